"""Workers: GPU slices handed to local processes (what `tensor-fusion run` asks for)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse

from tensorfusion.server.backend import ManagementBackend
from tensorfusion.server.responses import READ, WRITE, errors
from tensorfusion.server.schemas import CreatedWorker, Released, Worker, WorkerList
from tensorfusion.server.worker_requests import WorkerCreate, WorkerPids

NO_SUCH_WORKER = errors(404)
UNSCHEDULABLE: dict[int | str, dict[str, Any]] = {
    409: errors(409)[409] | {"description": "Conflict (the name is taken) or Unschedulable"}
}


def worker_routes(backend: ManagementBackend) -> APIRouter:
    router = APIRouter(tags=["workers"])

    @router.get("/api/workers", response_model=WorkerList, responses=READ, summary="Live workers")
    def workers() -> JSONResponse:
        return JSONResponse({"workers": backend.workers()})

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
