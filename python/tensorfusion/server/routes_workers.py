"""Workers: GPU slices handed to local processes (what `tensor-fusion run` asks for). The
listing answers conditionally (`conditional`) and narrows to nodes (`?node=`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tensorfusion.server.backend import ManagementBackend
from tensorfusion.server.conditional import NOT_MODIFIED, conditional_json
from tensorfusion.server.node_filter import NodeFilter
from tensorfusion.server.responses import READ, WRITE, errors
from tensorfusion.server.schemas import CreatedWorker, Released, Worker, WorkerList
from tensorfusion.server.worker_requests import WorkerCreate, WorkerPids

NO_SUCH_WORKER = errors(404)
UNSCHEDULABLE: dict[int | str, dict[str, Any]] = {
    409: errors(409)[409] | {"description": "Conflict (the name is taken) or Unschedulable"}
}


def worker_routes(backend: ManagementBackend) -> APIRouter:
    router = APIRouter(tags=["workers"])

    @router.get(
        "/api/workers",
        response_model=WorkerList,
        responses=READ | NOT_MODIFIED | errors(422),
        summary="Live workers",
    )
    def workers(
        request: Request,
        node: NodeFilter = None,
        pending: Annotated[
            bool,
            Query(
                description="only the workers waiting for a GPU: phase Pending, or holding "
                "no GPU that is still in the cluster"
            ),
        ] = False,
    ) -> Response:
        if pending:
            rows = backend.pending_workers()
            if node is not None:
                rows = [row for row in rows if row["node"] in node]
        elif node is None:
            rows = backend.workers()
        else:
            rows = backend.node_workers(frozenset(node))
        return conditional_json(request, {"workers": rows})

    @router.post(
        "/api/workers",
        status_code=201,
        response_model=CreatedWorker,
        responses=WRITE | UNSCHEDULABLE,
        summary="Schedule and bind a worker (simulates first)",
    )
    def create_worker(body: WorkerCreate) -> JSONResponse:
        return JSONResponse(backend.create_worker(body.to_request()), status_code=201)

    @router.patch(
        "/api/workers/{name}",
        response_model=Worker,
        responses=WRITE | NO_SUCH_WORKER,
        summary="Record more processes of a worker",
    )
    def add_pids(name: str, body: WorkerPids) -> JSONResponse:
        return JSONResponse(backend.add_worker_pids(name, body.pids))

    @router.delete(
        "/api/workers/{name}",
        response_model=Released,
        responses=READ | NO_SUCH_WORKER,
        summary="Release a worker's allocation and shared regions",
    )
    def delete_worker(name: str) -> JSONResponse:
        return JSONResponse(backend.delete_worker(name))

    return router
