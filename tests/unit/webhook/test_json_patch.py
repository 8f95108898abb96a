"""The JSONPatch between two documents, applied as the API server applies it."""

from __future__ import annotations

from tensorfusion.webhook.json_patch import patch_between
from tests.kube.patches import json_patch


def test_the_patch_turns_one_document_into_the_other() -> None:
    before = {"metadata": {"annotations": {"a/b": "1", "gone": "x"}}, "spec": {"list": [1]}}
    after = {
        "metadata": {"annotations": {"a/b": "2", "c~d": "3"}},
        "spec": {"list": [1, 2], "new": {"k": "v"}},
    }
    patch = patch_between(before, after)
    assert json_patch(before, patch) == after
    paths = {operation["path"] for operation in patch}
    assert {"/metadata/annotations/a~1b", "/metadata/annotations/c~0d"} <= paths


def test_equal_documents_need_no_patch() -> None:
    assert patch_between({"a": {"b": [1]}}, {"a": {"b": [1]}}) == []
