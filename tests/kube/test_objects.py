"""Object semantics: identity, resourceVersion, conflicts, PUT, the status subresource, and the
errors bad requests get."""

from __future__ import annotations

from tests.kube.helpers import Api, api_error, http, pod
from tests.kube.runner import KubeApi


def test_create_sets_uid_timestamp_and_a_version(core_v1: Api) -> None:
    created = core_v1.create_namespaced_pod("default", pod("a"))
    other = core_v1.create_namespaced_pod("default", pod("b"))
    assert created.metadata.uid
    assert created.metadata.uid != other.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(other.metadata.resource_version) > int(created.metadata.resource_version)
    assert created.status.phase == "Pending"
    assert created.spec.scheduler_name == "default-scheduler"


def test_every_write_increases_the_version_and_a_noop_does_not(
    core_v1: Api,
) -> None:
    versions = [
        int(
            core_v1.create_namespaced_config_map(
                "default", {"metadata": {"name": "c"}}
            ).metadata.resource_version
        )
    ]
    for value in ("1", "2"):
        patched = core_v1.patch_namespaced_config_map("c", "default", {"data": {"k": value}})
        versions.append(int(patched.metadata.resource_version))
    same = core_v1.patch_namespaced_config_map("c", "default", {"data": {"k": "2"}})
    assert versions == sorted(set(versions))
    assert int(same.metadata.resource_version) == versions[-1]


def test_put_replaces_and_a_stale_version_is_a_409(core_v1: Api) -> None:
    first = core_v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    body = {
        "metadata": {"name": "c", "resourceVersion": first.metadata.resource_version},
        "data": {"b": "2"},
    }
    replaced = core_v1.replace_namespaced_config_map("c", "default", body)
    assert replaced.data == {"b": "2"}
    assert replaced.metadata.uid == first.metadata.uid
    error = api_error(core_v1.replace_namespaced_config_map, "c", "default", body)
    assert error.status == 409
    assert "the object has been modified" in error.message
    assert core_v1.read_namespaced_config_map("c", "default").data == {"b": "2"}


def test_a_put_naming_another_uid_is_a_409(core_v1: Api) -> None:
    first = core_v1.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    core_v1.delete_namespaced_config_map("c", "default")
    again = core_v1.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    body = {"metadata": {"name": "c", "uid": first.metadata.uid}, "data": {"a": "1"}}
    error = api_error(core_v1.replace_namespaced_config_map, "c", "default", body)
    assert error.status == 409
    assert f"UID in precondition: {first.metadata.uid}" in error.message
    assert core_v1.read_namespaced_config_map("c", "default").data is None
    body["metadata"]["uid"] = again.metadata.uid
    assert core_v1.replace_namespaced_config_map("c", "default", body).data == {"a": "1"}


def test_a_pod_is_defaulted_on_update_as_on_create(core_v1: Api) -> None:
    created = core_v1.create_namespaced_pod("default", pod("a"))
    replaced = core_v1.replace_namespaced_pod("a", "default", pod("a", labels={"x": "1"}))
    assert replaced.spec.scheduler_name == "default-scheduler"
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    same = core_v1.replace_namespaced_pod("a", "default", pod("a", labels={"x": "1"}))
    assert same.metadata.resource_version == replaced.metadata.resource_version
    patched = core_v1.patch_namespaced_pod("a", "default", {"spec": {"schedulerName": None}})
    assert patched.spec.scheduler_name == "default-scheduler"
    custom = pod("a", labels={"x": "1"}, schedulerName="tensor-fusion-scheduler")
    assert (
        core_v1.replace_namespaced_pod("a", "default", custom).spec.scheduler_name
        == "tensor-fusion-scheduler"
    )


def test_a_duplicate_create_is_409_already_exists(core_v1: Api) -> None:
    core_v1.create_namespaced_pod("default", pod("a"))
    error = api_error(core_v1.create_namespaced_pod, "default", pod("a"))
    assert error.status == 409
    assert error.reason == "AlreadyExists"


def test_status_is_kept_apart_from_the_rest(core_v1: Api) -> None:
    core_v1.create_namespaced_pod("default", pod("a"))
    core_v1.patch_namespaced_pod(
        "a", "default", {"status": {"phase": "Running"}, "metadata": {"labels": {"x": "1"}}}
    )
    after_main = core_v1.read_namespaced_pod("a", "default")
    assert after_main.status.phase == "Pending"
    assert after_main.metadata.labels == {"x": "1"}
    core_v1.patch_namespaced_pod_status(
        "a", "default", {"status": {"phase": "Running"}, "metadata": {"labels": {"x": "2"}}}
    )
    after_status = core_v1.read_namespaced_pod("a", "default")
    assert after_status.status.phase == "Running"
    assert after_status.metadata.labels == {"x": "1"}


def test_spec_changes_bump_generation_and_status_changes_do_not(
    core_v1: Api,
) -> None:
    core_v1.create_node(
        {"metadata": {"name": "n"}, "spec": {}, "status": {"capacity": {"cpu": "4"}}}
    )
    assert core_v1.read_node("n").status.capacity == {"cpu": "4"}
    core_v1.patch_node_status("n", {"status": {"capacity": {"cpu": "8"}}})
    assert core_v1.read_node("n").metadata.generation == 1
    node = core_v1.patch_node("n", {"spec": {"unschedulable": True}})
    assert node.metadata.generation == 2


def test_delete_with_finalizers_marks_and_removing_them_deletes(
    core_v1: Api,
) -> None:
    core_v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "c", "finalizers": ["x/y"]}}
    )
    core_v1.delete_namespaced_config_map("c", "default")
    assert (
        core_v1.read_namespaced_config_map("c", "default").metadata.deletion_timestamp is not None
    )
    core_v1.patch_namespaced_config_map("c", "default", {"metadata": {"finalizers": None}})
    assert api_error(core_v1.read_namespaced_config_map, "c", "default").status == 404


def test_bad_requests_name_the_field_and_store_nothing(kube_api: KubeApi) -> None:
    with http(kube_api) as client:
        no_name = client.post("/api/v1/namespaces/default/configmaps", json={"metadata": {}})
        no_containers = client.post(
            "/api/v1/namespaces/default/pods", json={"metadata": {"name": "p"}, "spec": {}}
        )
        other_namespace = client.post(
            "/api/v1/namespaces/default/configmaps",
            json={"metadata": {"name": "c", "namespace": "x"}},
        )
        wrong_kind = client.post(
            "/api/v1/namespaces/default/configmaps",
            json={"kind": "Secret", "metadata": {"name": "c"}},
        )
        not_json = client.post(
            "/api/v1/namespaces/default/configmaps",
            content=b"{",
            headers={"Content-Type": "application/json"},
        )
        listed = (
            client.get("/api/v1/configmaps").json()["items"]
            + client.get("/api/v1/pods").json()["items"]
        )
    assert (no_name.status_code, no_containers.status_code) == (422, 422)
    assert "metadata.name: Required value" in no_name.json()["message"]
    assert "spec.containers: Required value" in no_containers.json()["message"]
    assert other_namespace.status_code == wrong_kind.status_code == not_json.status_code == 400
    assert "metadata.namespace" in other_namespace.json()["message"]
    assert "kind" in wrong_kind.json()["message"]
    assert listed == []


def test_generate_name_makes_a_unique_name(core_v1: Api) -> None:
    body = {"metadata": {"generateName": "job-"}}
    names = {core_v1.create_namespaced_config_map("default", body).metadata.name for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("job-") and len(name) == 9 for name in names)


def test_lists_carry_kind_and_version(core_v1: Api, kube_api: KubeApi) -> None:
    created = core_v1.create_namespaced_pod("default", pod("a"))
    with http(kube_api) as client:
        listed = client.get("/api/v1/namespaces/default/pods").json()
    assert listed["kind"] == "PodList"
    assert listed["apiVersion"] == "v1"
    assert listed["metadata"]["resourceVersion"] == created.metadata.resource_version


def test_requests_are_not_kept(core_v1: Api, kube_api: KubeApi) -> None:
    for index in range(20):
        core_v1.create_namespaced_config_map("default", {"metadata": {"name": f"c{index}"}})
    assert list(kube_api.emulator) == []  # kmock's view of the requests it kept


def test_delete_collection_deletes_what_the_selector_picks(core_v1: Api) -> None:
    for name, tier in (("a", "1"), ("b", "1"), ("c", "2")):
        core_v1.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"tier": tier}}}
        )
    core_v1.delete_collection_namespaced_config_map("default", label_selector="tier=1")
    assert [c.metadata.name for c in core_v1.list_namespaced_config_map("default").items] == ["c"]
