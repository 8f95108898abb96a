"""An emulator of the Kubernetes API server, for tests: kmock's `KubernetesEmulator` with its
handlers replaced, so that the official Python client, kubectl and helm work against it.

What it does:
- discovery of the built-in groups (`resources.BUILTIN`) and of every group a
  CustomResourceDefinition adds once it is created (and removes once it is deleted);
- objects get a uid, creationTimestamp, generation, and a resourceVersion from one counter that
  every write increases; a write with a stale resourceVersion is a 409 Conflict, and so is a
  PUT naming another uid;
- create, get, list, PUT, delete (finalizers honoured), delete-collection; the `/status`
  subresource kept apart from the rest; merge, JSON and strategic-merge patch, and server-side
  apply, which creates a missing object (its field ownership is not tracked);
- label selectors and field selectors on any dotted field path;
- lists carry `kind` and `metadata.resourceVersion`;
- watch from a resourceVersion (replayed from a bounded change log; older ones get 410 Gone,
  as do all older ones after `compact()`), bookmarks, `timeoutSeconds`; `drop_watches()`
  ends every open watch, as a restart of the API server does;
- `pods/binding` (409 if the pod is bound already) and `pods/eviction` (deletes the pod);
- mutating admission on CREATE through every MutatingWebhookConfiguration (`admission.py`);
- TokenReview for the tokens registered with `register_token`;
- protobuf request bodies for Secrets (Helm's release records), and an empty protobuf
  `/openapi/v2`.

What it does not do: no controllers (no Deployments making Pods, no garbage collection by
ownerReferences, no namespace cleanup on delete), no kubelet (a Pod stays Pending and is
deleted at once, without a grace period), no PodDisruptionBudgets (an eviction always
succeeds), no validating admission or CEL matchConditions, no webhook reinvocation, no schema
validation or defaulting beyond `Pod.spec.containers` (required on create) and
`Pod.spec.schedulerName` (defaulted on every write), no authentication or authorisation
(every request is the admin), no pagination (`limit` is ignored and lists are whole), no
`resourceVersion` semantics on list and get (they are always current), no aggregated
discovery, no OpenAPI v3, no protobuf responses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, cast

import aiohttp
import aiohttp.web
import attrs
import kmock
from kmock import KubernetesEmulator
from typing_extensions import override

from tensorfusion.store.merge_patch import merge_patch
from tests.kube import admission, lifecycle
from tests.kube.patches import PatchError, json_patch, strategic_merge_patch
from tests.kube.protocol import (
    APPLY_PATCH,
    ApiError,
    ApiPath,
    bad_request,
    conflict,
    decode_body,
    json_response,
    not_found,
    parse_resource_path,
    status_object,
)
from tests.kube.resources import BUILTIN, ApiResource, crd_resources
from tests.kube.selectors import (
    Predicate,
    SelectorError,
    field_selector,
    label_selector,
    labels_of,
)
from tests.kube.service_routes import Route, ServiceResolver, service_host
from tests.kube.store import Obj, ObjectStore, meta
from tests.kube.watch import WatchRequest, serve_watch

SERVER_VERSION = {"major": "1", "minor": "35", "gitVersion": "v1.35.0", "platform": "linux/amd64"}
# The protobuf OpenAPI v2 document clients fetch; an empty message is a valid, empty spec.
OPENAPI_V2_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
_PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    APPLY_PATCH,
)

_CRD = ("apiextensions.k8s.io", "customresourcedefinitions")
_NAMESPACES = ("", "namespaces")
_MUTATING_WEBHOOKS = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")


@attrs.define(kw_only=True)
class ApiServerEmulator(KubernetesEmulator):
    """The emulator; run it with `tests.kube.runner.EmulatorThread`."""

    bookmark_interval_s: float = 1.0
    log_limit: int = 100_000
    _store: ObjectStore = attrs.field(init=False)
    _served: dict[tuple[str, str, str], ApiResource] = attrs.field(factory=dict, init=False)
    _tokens: dict[str, str] = attrs.field(factory=dict, init=False)
    _session: aiohttp.ClientSession | None = attrs.field(default=None, init=False)
    _service_routes: dict[Route, Route] = attrs.field(factory=dict, init=False)

    @override
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._store = ObjectStore(self.log_limit)
        for resource in BUILTIN:
            self._serve(resource)
        for name in DEFAULT_NAMESPACES:
            namespace = self._namespace_created({"metadata": {"name": name}})
            self._commit_create(self._resource("", "v1", "namespaces"), namespace)

    # --- control, for tests ---------------------------------------------------------------

    def register_token(self, token: str, username: str) -> None:
        """Make TokenReview authenticate `token` as `username`."""
        if not token or not username:
            raise ValueError("register_token: token and username must not be empty")
        self._tokens[token] = username

    def route_service(self, namespace: str, name: str, port: int, to: Route) -> None:
        """Send webhook calls to Service `namespace/name` on `port` to `to` (host, port)."""
        self._service_routes[service_host(namespace, name), port] = to

    def compact(self) -> None:
        """Drop the change log: a watch from any earlier resourceVersion gets 410 Gone."""
        self._store.compact()

    def drop_watches(self, *, compact: bool = False) -> None:
        """End every open watch, as an API server's restart does; with `compact`, drop the
        change log first, in the same step, so that every watch resumed from the version it
        had reached gets 410 Gone (unless it had seen the very latest change)."""
        if compact:
            self._store.compact()
        self._store.end_watches()

    async def stop(self) -> None:
        """End every watch and close the webhook client."""
        self._store.close()
        if self._session is not None:
            await self._session.close()

    @property
    def store(self) -> ObjectStore:
        return self._store

    # --- resources and discovery ------------------------------------------------------------

    def _serve(self, resource: ApiResource) -> None:
        self._served[(resource.group, resource.version, resource.plural)] = resource
        self.resources[
            kmock.resource(group=resource.group, version=resource.version, plural=resource.plural)
        ] = kmock.ResourceInfo(
            namespaced=resource.namespaced,
            kind=resource.kind,
            singular=resource.kind.lower(),
            verbs=set(resource.verbs),
            shortnames=set(resource.short_names),
            subresources=set(resource.subresources),
        )

    def _unserve(self, resource: ApiResource) -> None:
        self._served.pop((resource.group, resource.version, resource.plural), None)
        del self.resources[
            kmock.resource(group=resource.group, version=resource.version, plural=resource.plural)
        ]

    def _resource(self, group: str, version: str, plural: str) -> ApiResource:
        try:
            return self._served[(group, version, plural)]
        except KeyError:
            gv = f"{group}/{version}" if group else version
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({gv}, {plural})",
            ) from None

    def _versions(self) -> dict[str, list[str]]:
        versions: dict[str, list[str]] = {}
        for group, version, _ in self._served:
            if version not in versions.setdefault(group, []):
                versions[group].append(version)
        return versions

    @override
    def _get_resources(self) -> list[kmock.resource]:
        return [kmock.resource(group=g, version=v, plural=p) for g, v, p in self._served]

    @override
    async def _serve_root(self, request: kmock.Request) -> Any:
        paths = {"/api", "/api/v1", "/apis", "/version", "/openapi/v2", "/healthz"}
        for group, versions in self._versions().items():
            if group:
                paths.add(f"/apis/{group}")
                paths.update(f"/apis/{group}/{version}" for version in versions)
        return {"paths": sorted(paths)}

    @override
    async def _serve_server_version(self, request: kmock.Request) -> Any:
        return SERVER_VERSION

    @override
    async def _serve_api(self, request: kmock.Request) -> Any:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}

    def _group(self, group: str, versions: list[str]) -> dict[str, Any]:
        listed = [
            {"groupVersion": f"{group}/{version}", "version": version} for version in versions
        ]
        return {"name": group, "versions": listed, "preferredVersion": listed[0]}

    @override
    async def _serve_apis(self, request: kmock.Request) -> Any:
        groups = [self._group(g, v) for g, v in sorted(self._versions().items()) if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    @override
    async def _serve_group(self, request: kmock.Request) -> Any:
        group = str(request.resource.group if request.resource else "")
        versions = self._versions().get(group)
        if not group or not versions:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({group})"
            )
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group(group, versions)}

    @override
    async def _serve_version(self, request: kmock.Request) -> Any:
        group = str(request.resource.group if request.resource else "")
        version = str(request.resource.version if request.resource else "")
        served = [r for (g, v, _), r in sorted(self._served.items()) if (g, v) == (group, version)]
        if not served:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        entries = []
        for resource in served:
            entries.append(
                {
                    "name": resource.plural,
                    "singularName": resource.kind.lower(),
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": list(resource.verbs),
                    "shortNames": list(resource.short_names),
                }
            )
            entries.extend(
                {
                    "name": f"{resource.plural}/{sub}",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind if sub == "status" else sub.capitalize(),
                    "verbs": ["get", "patch", "update"] if sub == "status" else ["create"],
                }
                for sub in sorted(resource.subresources)
            )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries,
        }

    # --- HTTP entry ---------------------------------------------------------------------------

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Route each request straight to its handler: kmock's matching and its history of
        every request (which slows each request down as it grows) are left out."""
        try:
            return await self._route(raw_request)
        except ApiError as error:
            return json_response(error.status(), status=error.code)

    async def _route(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = [part for part in raw.path.split("/") if part]
        if raw.method == "GET":
            discovery = await self._discovery(parts)
            if discovery is not None:
                return discovery
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({raw.path})"
            )
        namespaced = {
            r.plural
            for (g, v, _), r in self._served.items()
            if (g, v) == (group, version) and r.namespaced
        }
        path = parse_resource_path(rest, group, version, namespaced)
        resource = self._resource(group, version, path.plural)
        if path.subresource is not None and path.subresource not in resource.subresources:
            raise ApiError(
                404,
                "NotFound",
                "the server could not find the requested resource "
                f"({path.plural}/{path.subresource})",
            )
        if resource.namespaced and path.namespace is None and raw.method not in ("GET",):
            raise bad_request(f"{resource.plural}: a namespace is required")
        body = decode_body(raw.content_type, await raw.read())
        return await self._dispatch(raw, resource, path, body)

    async def _discovery(self, parts: list[str]) -> aiohttp.web.StreamResponse | None:
        request = kmock.Request()
        if not parts:
            return json_response(await self._serve_root(request))
        if parts == ["version"]:
            return json_response(await self._serve_server_version(request))
        if parts[0] in ("healthz", "livez", "readyz"):
            return aiohttp.web.Response(text="ok")
        if parts == ["openapi", "v2"]:
            return aiohttp.web.Response(body=b"", content_type=OPENAPI_V2_TYPE)
        if parts == ["api"]:
            return json_response(await self._serve_api(request))
        if parts == ["apis"]:
            return json_response(await self._serve_apis(request))
        if parts[0] == "api" and len(parts) == 2:
            return json_response(
                await self._serve_version(
                    kmock.Request(resource=kmock.resource(group="", version=parts[1]))
                )
            )
        if parts[0] == "apis" and len(parts) == 2:
            return json_response(
                await self._serve_group(kmock.Request(resource=kmock.resource(group=parts[1])))
            )
        if parts[0] == "apis" and len(parts) == 3:
            return json_response(
                await self._serve_version(
                    kmock.Request(resource=kmock.resource(group=parts[1], version=parts[2]))
                )
            )
        return None

    async def _dispatch(
        self, raw: aiohttp.web.BaseRequest, resource: ApiResource, path: ApiPath, body: Any
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        dry_run = "All" in query.getall("dryRun", [])
        method, name, sub = raw.method, path.name, path.subresource
        if name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                return await self._serve_watch_stream(raw, resource, path.namespace, None)
            if method == "GET":
                return json_response(self._list(resource, path.namespace, query))
            if method == "POST":
                return await self._create(resource, path.namespace, body, dry_run)
            if method == "DELETE":
                return json_response(self._delete_collection(resource, path.namespace, query))
        elif sub in (None, "status"):
            if method == "GET" and query.get("watch") in ("true", "1"):
                return await self._serve_watch_stream(raw, resource, path.namespace, name)
            if method == "GET":
                return json_response(self._existing(resource, path.namespace, name))
            if method == "PUT":
                return json_response(self._update(resource, path, body, dry_run))
            if method == "PATCH":
                return await self._patch(resource, path, raw.content_type, body, dry_run)
            if method == "DELETE" and sub is None:
                return json_response(self._delete(resource, path.namespace, name, body, dry_run))
        elif sub == "binding" and method == "POST":
            return json_response(self._bind(resource, path.namespace, name, body), status=201)
        elif sub == "eviction" and method == "POST":
            self._delete(resource, path.namespace, name, None, dry_run)
            return json_response(status_object(201), status=201)
        raise ApiError(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({method})",
        )

    # --- reads ------------------------------------------------------------------------------

    def _existing(self, resource: ApiResource, namespace: str | None, name: str) -> Obj:
        obj = self._store.get(resource.key, (namespace if resource.namespaced else None, name))
        if obj is None:
            raise not_found(resource.plural, name, resource.group)
        return obj

    def _selection(self, query: Mapping[str, str], name: str | None = None) -> Predicate:
        try:
            labels = label_selector(query.get("labelSelector", ""))
            fields = field_selector(query.get("fieldSelector", ""))
        except SelectorError as error:
            raise bad_request(str(error)) from error
        if name is None:
            return lambda obj: labels(labels_of(obj)) and fields(obj)
        return lambda obj: meta(obj).get("name") == name and labels(labels_of(obj)) and fields(obj)

    def _list(self, resource: ApiResource, namespace: str | None, query: Mapping[str, str]) -> Obj:
        selects = self._selection(query)
        items = [obj for obj in self._store.objects(resource.key, namespace) if selects(obj)]
        items.sort(key=lambda obj: (meta(obj).get("namespace", ""), meta(obj)["name"]))
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(self._store.version)},
            "items": items,
        }

    async def _serve_watch_stream(
        self,
        raw: aiohttp.web.BaseRequest,
        resource: ApiResource,
        namespace: str | None,
        name: str | None,
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        since = query.get("resourceVersion") or "0"
        timeout = query.get("timeoutSeconds")
        try:
            since_version = int(since)
            timeout_s = None if timeout is None else float(timeout)
        except ValueError as error:
            raise bad_request(
                f"resourceVersion or timeoutSeconds: invalid value: {error}"
            ) from error
        initial_events = query.get("sendInitialEvents") in ("true", "1")
        request = WatchRequest(
            resource,
            namespace,
            self._selection(query, name),
            None if initial_events else since_version or None,
            query.get("allowWatchBookmarks") in ("true", "1"),
            timeout_s,
            initial_events,
        )
        return await serve_watch(raw, self._store, request, self.bookmark_interval_s)

    # --- writes -----------------------------------------------------------------------------

    def _namespace_created(self, obj: Obj) -> Obj:
        metadata = meta(obj)
        labels = {**(metadata.get("labels") or {}), NAMESPACE_LABEL: metadata.get("name", "")}
        return {
            **obj,
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {**metadata, "labels": labels},
            "spec": {"finalizers": ["kubernetes"]},
        }

    def _namespace_labels(self, namespace: str | None) -> dict[str, str]:
        if namespace is None:
            return {}
        obj = self._store.get(_NAMESPACES, (None, namespace))
        return dict(labels_of(obj)) if obj is not None else {NAMESPACE_LABEL: namespace}

    def _webhook_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = ServiceResolver(self._service_routes)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))
        return self._session

    async def _create(
        self, resource: ApiResource, namespace: str | None, body: Any, dry_run: bool
    ) -> aiohttp.web.StreamResponse:
        if resource.plural == "tokenreviews":
            return json_response(self._review_token(body), status=201)
        obj = lifecycle.checked_body(body, resource, namespace)
        configurations = self._store.objects(_MUTATING_WEBHOOKS, None)
        warnings: list[str] = []
        if configurations:
            attributes = admission.Attributes(resource, "CREATE", namespace, obj, dry_run)
            try:
                admitted = await admission.mutate(
                    self._webhook_session(),
                    configurations,
                    attributes,
                    self._namespace_labels(namespace),
                )
            except admission.AdmissionError as error:
                raise ApiError(error.code, error.reason, error.message) from error
            obj, warnings = (
                lifecycle.checked_body(admitted.obj, resource, namespace),
                admitted.warnings,
            )
        created = lifecycle.prepare_create(resource, obj)
        if resource.key == _NAMESPACES:
            created = self._namespace_created(created)
        if self._store.get(
            resource.key, (namespace if resource.namespaced else None, meta(created)["name"])
        ):
            name = meta(created)["name"]
            details = {"name": name, "group": resource.group, "kind": resource.plural}
            raise ApiError(
                409, "AlreadyExists", f'{resource.plural} "{name}" already exists', details
            )
        if resource.key == _CRD:
            created = self._crd_created(created)
        if dry_run:
            return json_response(created, status=201, warnings=warnings)
        return json_response(self._commit_create(resource, created), status=201, warnings=warnings)

    def _commit_create(self, resource: ApiResource, obj: Obj) -> Obj:
        key = (meta(obj).get("namespace"), meta(obj)["name"])
        return self._store.write(resource.key, key, "ADDED", obj)

    def _crd_created(self, crd: Obj) -> Obj:
        try:
            served = crd_resources(crd)
        except ValueError as error:
            raise ApiError(
                422,
                "Invalid",
                f'CustomResourceDefinition "{meta(crd)["name"]}" is invalid: {error}',
            ) from error
        for resource in served:
            self._serve(resource)
        storage = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
        conditions = [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "lastTransitionTime": lifecycle.now(),
            }
            for kind, reason in (
                ("NamesAccepted", "NoConflicts"),
                ("Established", "InitialNamesAccepted"),
            )
        ]
        status = {
            "conditions": conditions,
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": storage,
        }
        return {**crd, "status": status}

    def _update(self, resource: ApiResource, path: ApiPath, body: Any, dry_run: bool) -> Obj:
        old = self._existing(resource, path.namespace, cast(str, path.name))
        new = lifecycle.checked_body(body, resource, path.namespace)
        lifecycle.check_uid_precondition(resource, old, new)
        updated = lifecycle.prepare_update(resource, old, new, path.subresource)
        return self._commit_update(resource, old, updated, dry_run)

    def _commit_update(self, resource: ApiResource, old: Obj, new: Obj, dry_run: bool) -> Obj:
        if lifecycle.unchanged(old, new) or dry_run:
            return new if dry_run else old
        key = (meta(old).get("namespace"), meta(old)["name"])
        if meta(new).get("deletionTimestamp") and not meta(new).get("finalizers"):
            return self._store.write(resource.key, key, "DELETED", new)
        return self._store.write(resource.key, key, "MODIFIED", new)

    async def _patch(
        self, resource: ApiResource, path: ApiPath, content_type: str, body: Any, dry_run: bool
    ) -> aiohttp.web.StreamResponse:
        name = cast(str, path.name)
        if content_type not in _PATCH_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(_PATCH_TYPES)}",
            )
        namespace = path.namespace if resource.namespaced else None
        old = self._store.get(resource.key, (namespace, name))
        if old is None:
            if content_type == APPLY_PATCH and path.subresource is None:
                return await self._create(resource, namespace, body, dry_run)
            raise not_found(resource.plural, name, resource.group)
        is_custom = resource.group not in {r.group for r in BUILTIN}
        try:
            if content_type == "application/json-patch+json":
                patched = json_patch(old, body)
            elif content_type == "application/merge-patch+json" or is_custom:
                if content_type == "application/strategic-merge-patch+json":
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; "
                        "use a merge patch",
                    )
                patched = merge_patch(old, body)
            else:
                patched = strategic_merge_patch(old, body)
        except PatchError as error:
            raise ApiError(422, "Invalid", str(error)) from error
        if not isinstance(patched, dict):
            raise bad_request("the patch must leave an object")
        new = lifecycle.checked_body(patched, resource, namespace)
        updated = lifecycle.prepare_update(resource, old, new, path.subresource)
        return json_response(self._commit_update(resource, old, updated, dry_run))

    def _delete(
        self, resource: ApiResource, namespace: str | None, name: str, body: Any, dry_run: bool
    ) -> Obj:
        old = self._existing(resource, namespace, name)
        preconditions = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) and preconditions[field] != meta(old).get(field):
                found = meta(old).get(field)
                why = f"Precondition failed: {field}: {preconditions[field]}, found {found}"
                raise conflict(resource.plural, name, why)
        if dry_run:
            return old
        key = (meta(old).get("namespace"), name)
        if meta(old).get("finalizers"):
            if meta(old).get("deletionTimestamp"):
                return old
            marked = {**old, "metadata": {**meta(old), "deletionTimestamp": lifecycle.now()}}
            return self._store.write(resource.key, key, "MODIFIED", marked)
        if resource.key == _CRD:
            self._crd_deleted(old)
        return self._store.write(resource.key, key, "DELETED", old)

    def _crd_deleted(self, crd: Obj) -> None:
        for resource in crd_resources(crd):
            self._unserve(resource)
        plural = crd["spec"]["names"]["plural"]
        self._store.drop_resource((crd["spec"]["group"], plural))

    def _delete_collection(
        self, resource: ApiResource, namespace: str | None, query: Mapping[str, str]
    ) -> Obj:
        listed = self._list(resource, namespace, query)
        for obj in listed["items"]:
            self._delete(resource, meta(obj).get("namespace"), meta(obj)["name"], None, False)
        return {**listed, "metadata": {"resourceVersion": str(self._store.version)}}

    def _bind(self, resource: ApiResource, namespace: str | None, name: str, body: Any) -> Obj:
        target = (body or {}).get("target") if isinstance(body, dict) else None
        node = target.get("name") if isinstance(target, dict) else None
        if not node:
            raise ApiError(
                422, "Invalid", f'Binding "{name}" is invalid: target.name: Required value'
            )
        pod = self._existing(resource, namespace, name)
        bound_to = (pod.get("spec") or {}).get("nodeName")
        if bound_to:
            raise conflict(
                "pods/binding", name, f'pod {name} is already assigned to node "{bound_to}"'
            )
        annotations = {
            **(meta(pod).get("annotations") or {}),
            **(meta(body).get("annotations") or {}),
        }
        status = pod.get("status") or {}
        conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": lifecycle.now()}
        )
        bound = {
            **pod,
            "metadata": {**meta(pod), "annotations": annotations},
            "spec": {**pod["spec"], "nodeName": node},
            "status": {**status, "conditions": conditions},
        }
        self._store.write(resource.key, (namespace, name), "MODIFIED", bound)
        return status_object(201)

    def _review_token(self, body: Any) -> Obj:
        token = ((body or {}).get("spec") or {}).get("token") if isinstance(body, dict) else None
        if not token:
            raise ApiError(422, "Invalid", "TokenReview is invalid: spec.token: Required value")
        username = self._tokens.get(token)
        status: dict[str, Any] = {"authenticated": username is not None}
        if username is not None:
            status["user"] = {"username": username, "groups": ["system:authenticated"]}
        else:
            status["error"] = "invalid bearer token"
        return {
            **body,
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "status": status,
        }


async def run_until(emulator: ApiServerEmulator, ready: Any, stop: asyncio.Event) -> None:
    """Serve `emulator` on a free local port, call `ready(url)`, and serve until `stop`."""
    async with emulator, kmock.Server(emulator) as server:
        ready(str(server.url).rstrip("/"))
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()
        await emulator.stop()
