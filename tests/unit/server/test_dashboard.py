"""`/` serves the dashboard page, `/static/*` its files; both are reads like any other."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tensorfusion.server.dashboard import STATIC_DIR, mount_dashboard
from tensorfusion.server.errors import install_error_handlers
from tests.unit.server.conftest import LOOPBACK


def dashboard_app(static_dir: Path) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    mount_dashboard(app, static_dir)
    return TestClient(app, client=LOOPBACK)


def test_the_index_and_its_files_are_served(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>pools</html>")
    (tmp_path / "app.js").write_text("draw();")
    client = dashboard_app(tmp_path)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == "<html>pools</html>"
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert script.text == "draw();"


def test_a_missing_file_is_a_json_404(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html></html>")
    answer = dashboard_app(tmp_path).get("/static/nope.js")
    assert answer.status_code == 404
    assert answer.json()["error"] == "NotFound"


def test_files_outside_the_directory_are_not_served(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (tmp_path / "secret.txt").write_text("token")
    answer = dashboard_app(static).get("/static/%2e%2e/secret.txt")
    assert answer.status_code == 404
    assert "token" not in answer.text


def test_without_an_index_the_page_is_a_json_404(tmp_path: Path) -> None:
    client = dashboard_app(tmp_path / "missing")
    answer = client.get("/")
    assert answer.status_code == 404
    assert "dashboard is not installed" in answer.json()["message"]
    assert client.get("/static/app.js").status_code == 404


def test_the_installed_dashboard_is_served(local: TestClient, remote: TestClient) -> None:
    page = local.get("/")
    assert page.status_code == 200
    assert page.text == (STATIC_DIR / "index.html").read_text()
    assert remote.get("/").status_code == 401
