"""Fixtures of the integration tests."""

from tests.integration.alertmanager_fixture import alertmanager, webhook

__all__ = ["alertmanager", "webhook"]
