"""schemathesis against the live OpenAPI spec (uvicorn over the real embedded control plane):
whatever it sends, the server answers without a 5xx, and every answer matches the schema
the spec documents for its status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.app import create_app
from tensorfusion.server.runner import start_in_thread
from tensorfusion.server.settings import ServerSettings

pytestmark = pytest.mark.timing

EXAMPLES = 40
"""Per operation; with ten operations this keeps the run near half a minute."""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The server's URL and the header that authorizes it."""
    root = tmp_path_factory.mktemp("fuzz")
    fleet = root / "fleet.yaml"
    fleet.write_text(generate_fleet(nodes=4, gpus_per_node=8, model="H100", fill=0.3).to_yaml())
    plane = ControlPlane(ControlPlaneConfig(state_dir=root / "state", fleet=Path(fleet)))
    plane.start()
    try:
        app = create_app(plane, ServerSettings(token=plane.token))
        with start_in_thread(app) as server:
            yield server.url, {"Authorization": f"Bearer {plane.token}"}
    finally:
        plane.stop()


def test_no_server_errors(live: tuple[str, dict[str, str]]) -> None:
    """Each operation in turn, driven by hypothesis directly (schemathesis' own pytest
    integration depends on pytest internals that change between releases)."""
    url, auth = live
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=auth)
    operations = list(schema.get_all_operations())
    assert len(operations) >= 10
    calls = 0
    for result in operations:
        if not isinstance(result, Ok):  # an operation the spec describes wrongly
            raise result.err()
        operation = result.ok()

        @given(
            case=operation.as_strategy(GenerationMode.POSITIVE)
            | operation.as_strategy(GenerationMode.NEGATIVE)
        )
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case[Any]) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(
                headers=auth, checks=[not_a_server_error, response_schema_conformance], timeout=30
            )

        check()
    assert calls >= len(operations) * 5  # the strategies really generated requests
