"""The dashboard: `/` is `static/index.html`, `/static/*` the files next to it."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

from tensorfusion.server.errors import ApiError

STATIC_DIR: Final = Path(__file__).with_name("static")


def mount_dashboard(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    index = static_dir / "index.html"

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        if not index.is_file():
            raise ApiError(404, f"the dashboard is not installed ({index} is missing)")
        return FileResponse(index)

    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")
