"""`LocalStore`: the cluster store in one SQLite file, for embedded mode and tests.

Tables: `objects` (one row per object, its body as JSON text, unique per kind, namespace and
name), `changes` (the bounded change log that watchers read; a modification keeps the state
before it too, which tells a watch narrowed by a field selector whether the object left or
entered the selection), `leases`, and `meta` (the global resource version and the schema
version). Every write is one `BEGIN IMMEDIATE` transaction, so
processes sharing the file stay consistent; in a process, one connection serves every thread
under a lock. WAL mode lets readers proceed while a write is in progress.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from tensorfusion.api.field_errors import type_name
from tensorfusion.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    NotFoundError,
    ResourceExpiredError,
    StoreError,
)
from tensorfusion.gc_pause import collector_paused
from tensorfusion.store.arguments import (
    checked_holder,
    checked_lease_term,
    checked_now,
    checked_object_name,
    checked_seconds,
    checked_version,
)
from tensorfusion.store.field_selectors import (
    FieldSelector,
    checked_field_selector,
    checked_field_selectors,
    selects,
)
from tensorfusion.store.interface import ChangeFeed, EventType, Merge, WatchEvent, WriteOutcome
from tensorfusion.store.keys import ObjectKey, lookup_key
from tensorfusion.store.merge_patch import merge_patch
from tensorfusion.store.objects import (
    JsonObject,
    checked_annotations,
    checked_key,
    checked_list_query,
    checked_object,
    encoded,
)
from tensorfusion.store.polled_feed import PolledFeed
from tensorfusion.store.rewrites import checked_rewrite, refuse_version_on_create
from tensorfusion.store.scopes import checked_kinds, checked_versions
from tensorfusion.store.timestamps import rfc3339

STATE_FILE = "state.db"
_SCHEMA_VERSION = 2
_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS changes (
    resource_version INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    previous TEXT
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
INSERT OR IGNORE INTO meta VALUES ('schema', {_SCHEMA_VERSION}), ('resource_version', 0);
COMMIT;
"""
_INSERT_OBJECT = "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?)"
_WHERE_KEY = "WHERE kind = ? AND namespace = ? AND name = ?"
_ObjectRow = tuple[str, str, str, str, int, str]


def database_file(path: str | Path) -> str:
    """Where the database of `path` lives: ":memory:" as is; an existing directory, or a path
    without a file suffix, is a state directory holding `state.db` (created with its
    parents); anything else is the database file itself (its parents created)."""
    if not isinstance(path, str | Path) or not str(path):
        raise ConfigError("path", f"must be a file or directory path, got {path!r}")
    if str(path) == ":memory:":
        return ":memory:"
    file = Path(path)
    if file.is_dir() or not file.suffix:
        file = file / STATE_FILE
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create the state directory {file.parent}: {error}") from None
    return str(file)


def _loaded(body: str) -> Any:
    """The value of a stored JSON text. orjson reads it several times faster than the
    standard library, which a start pays for every pod of the cluster; like the API server's
    own decoding, it gives an integer beyond 64 bits as a float. Text it refuses, such as an
    unpaired surrogate escape, is read as the standard library reads it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _loaded_all(bodies: Iterable[str]) -> builtins.list[JsonObject]:
    with collector_paused():
        return [_loaded(body) for body in bodies]


def _timestamp() -> str:
    """Now in RFC 3339, UTC, whole seconds: the form Kubernetes writes."""
    return rfc3339(datetime.now(UTC))


def _current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'resource_version'").fetchone()
    return int(row[0])


def _schema_version(conn: sqlite3.Connection) -> int:
    """The file's schema version, after upgrading a version-1 file: its change log, which
    keeps no earlier states, is dropped, so that its watchers list again (410 Gone)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (schema,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if schema == 1:
            conn.execute("ALTER TABLE changes ADD COLUMN previous TEXT")
            conn.execute("DELETE FROM changes")
            conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema'")
            schema = 2
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(schema)


def _narrowed(
    selector: FieldSelector, event: str, obj: JsonObject, previous: str | None
) -> tuple[EventType, JsonObject] | None:
    """A change as a watch narrowed to `selector` sees it, as the API server sends it: an
    object entering the selection is ADDED; one leaving it is DELETED, in its state before
    the change at the change's version; a change outside the selection is not seen."""
    if event == "DELETED":
        return ("DELETED", obj) if selects(selector, obj) else None
    # An addition has no earlier state; {} is selected by no selector, which holds a pair.
    before: JsonObject = _loaded(previous) if previous else {}
    was_selected = selects(selector, before)
    if selects(selector, obj):
        return ("MODIFIED" if was_selected else "ADDED"), obj
    if not was_selected:
        return None
    before["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
    return "DELETED", before


class _Changes:
    """The resource versions handed out in one write transaction and the change-log rows
    they produce."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.version = _current_version(conn)
        self.rows: builtins.list[tuple[int, str, str, str, str | None]] = []

    def stamp(self, event: EventType, obj: JsonObject, previous: str | None = None) -> str:
        """Give `obj` the next resource version, log the change (with the JSON text of the
        state before it, for a modification) and return its JSON text."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        body = encoded(obj)
        self.rows.append((self.version, event, obj["kind"], body, previous))
        return body


class LocalStore:
    """The cluster store on SQLite; see `ClusterStore` for what each method promises.

    `change_log_size` bounds how many changes `events_since` and `watch` can replay;
    `poll_interval_s` is how often a waiting watch looks for writes made by other processes
    (writes from this process wake it at once); `busy_timeout_s` is how long a write waits
    for another process's write to finish.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        change_log_size: int = 10_000,
        poll_interval_s: float = 0.1,
        busy_timeout_s: float = 30.0,
    ) -> None:
        if isinstance(change_log_size, bool) or not isinstance(change_log_size, int):
            raise ConfigError("change_log_size", f"must be an integer, got {change_log_size!r}")
        if change_log_size < 1:
            raise ConfigError("change_log_size", f"must be >= 1, got {change_log_size}")
        self._log_size = change_log_size
        self._poll_interval_s = checked_seconds("poll_interval_s", poll_interval_s)
        busy_timeout = checked_seconds("busy_timeout_s", busy_timeout_s)
        self.file = database_file(path)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        try:
            conn = sqlite3.connect(
                self.file, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the state database {self.file}: {error}") from None
        self._conn: sqlite3.Connection | None = conn
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
            schema = _schema_version(conn)
        except sqlite3.Error as error:
            conn.close()
            raise StoreError(f"cannot open the state database {self.file}: {error}") from None
        if schema != _SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the state database {self.file} has schema version {schema}; "
                f"this version of tensor-fusion reads version {_SCHEMA_VERSION}"
            )

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction on the shared connection; SQLite failures become StoreError."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"the store on {self.file} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                conn.execute("COMMIT")
            except BaseException as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise StoreError(f"state database {self.file}: {error}") from error
                raise

    @contextmanager
    def _write(self) -> Iterator[_Changes]:
        """A write transaction that records its changes in the bounded log and wakes this
        process's watchers once committed."""
        with self._lock:
            with self._transaction(write=True) as conn:
                changes = _Changes(conn)
                yield changes
                if changes.rows:
                    # Changes already beyond the bound are never written: no reader could
                    # see them before this transaction trims them.
                    conn.executemany(
                        "INSERT INTO changes VALUES (?, ?, ?, ?, ?)",
                        changes.rows[-self._log_size :],
                    )
                    conn.execute(
                        "DELETE FROM changes WHERE resource_version <= ?",
                        (changes.version - self._log_size,),
                    )
                    conn.execute(
                        "UPDATE meta SET value = ? WHERE key = 'resource_version'",
                        (changes.version,),
                    )
            if changes.rows:
                self._changed.notify_all()

    @staticmethod
    def _stored(conn: sqlite3.Connection, key: ObjectKey) -> JsonObject:
        row = conn.execute(f"SELECT body FROM objects {_WHERE_KEY}", key.columns()).fetchone()
        if row is None:
            raise NotFoundError(f"{key} not found")
        stored: JsonObject = _loaded(row[0])
        return stored

    # -- reading -----------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        key = lookup_key(kind, name, namespace)
        with self._transaction(write=False) as conn:
            return self._stored(conn, key)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        field_selector: FieldSelector | None = None,
    ) -> builtins.list[JsonObject]:
        return self.list_with_version(kind, namespace, label_selector, field_selector)[0]

    def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        field_selector: FieldSelector | None = None,
    ) -> tuple[builtins.list[JsonObject], int]:
        sql, params = self._selection(kind, namespace, label_selector, field_selector)
        with self._transaction(write=False) as conn:
            rows = conn.execute(f"SELECT body {sql}", params).fetchall()
            version = _current_version(conn)
        return _loaded_all(body for (body,) in rows), version

    @staticmethod
    def _selection(
        kind: str,
        namespace: str | None,
        label_selector: Mapping[str, str] | None,
        field_selector: FieldSelector | None,
    ) -> tuple[str, builtins.list[str]]:
        """The FROM, WHERE and ORDER BY clauses of a list, and their parameters."""
        kind, only, selector = checked_list_query(kind, namespace, label_selector)
        fields = checked_field_selector("field_selector", kind, field_selector)
        sql = "FROM objects WHERE kind = ?"
        params = [kind]
        if only is not None:
            sql += " AND namespace = ?"
            params.append(only)
        for label, value in selector.items():
            # Label keys cannot hold a double quote, so quoting them makes a safe JSON path.
            sql += " AND json_extract(body, ?) = ?"
            params += [f'$.metadata.labels."{label}"', value]
        for path, value in fields.items():
            # A selectable field is a plain dotted path, which is a JSON path as it is. A
            # missing or null field holds "" (`spec.nodeName=` selects pods not yet bound).
            extract = (
                "IFNULL(json_extract(body, ?), '')" if value == "" else "json_extract(body, ?)"
            )
            sql += f" AND {extract} = ?"
            params += [f"$.{path}", value]
        return f"{sql} ORDER BY namespace, name", params

    # -- writing -----------------------------------------------------------------------

    def create(self, obj: Mapping[str, object]) -> JsonObject:
        return self._create([obj], batch=False)[0]

    def create_many(self, objs: Iterable[Mapping[str, object]]) -> builtins.list[JsonObject]:
        """Create every object in one transaction, with the checks of `create`: all or none.
        An error names the failing object's position (`objs[3].metadata.name`)."""
        return self._create(objs, batch=True)

    def _create(self, objs: Iterable[object], *, batch: bool) -> builtins.list[JsonObject]:
        now = _timestamp()
        rows: builtins.list[_ObjectRow] = []
        with self._write() as changes:
            for index, obj in enumerate(objs):
                try:
                    rows.append(self._new_row(changes, *checked_object(obj), now))
                except ConfigError as error:
                    if not batch:
                        raise
                    raise ConfigError(f"objs[{index}].{error.field}", error.message) from None
            before = changes.conn.total_changes
            try:
                changes.conn.executemany(_INSERT_OBJECT, rows)
            except sqlite3.IntegrityError:
                # Rows insert in order, so the count inserted is the position of the duplicate.
                index = changes.conn.total_changes - before
                where = f"objs[{index}]: " if batch else ""
                raise AlreadyExistsError(
                    f"{where}{ObjectKey(*rows[index][:3])} already exists"
                ) from None
        return _loaded_all(row[-1] for row in rows)

    def upsert_many(
        self, objs: Iterable[Mapping[str, object]], merges: Mapping[str, Merge]
    ) -> builtins.list[WriteOutcome]:
        """Create the missing objects and write `merges[kind](stored, given)` over the stored
        ones, in one transaction: all or none. See `ClusterStore.upsert_many`."""
        now = _timestamp()
        rows: builtins.list[_ObjectRow] = []
        outcomes: builtins.list[WriteOutcome] = []
        positions: dict[ObjectKey, int] = {}
        with self._write() as changes:
            for index, obj in enumerate(objs):
                try:
                    # The whole object is checked where it is written: an unchanged one is
                    # already stored, and a merge's result is checked as it is written.
                    key = checked_key(obj)
                    if (first := positions.setdefault(key, index)) != index:
                        raise ConfigError("metadata.name", f"{key} is also objs[{first}]")
                    merge = merges.get(key.kind)
                    # The body is only read, and decoded, for a kind that is merged.
                    column = "body" if merge else "uid"
                    found = changes.conn.execute(
                        f"SELECT {column} FROM objects {_WHERE_KEY}", key.columns()
                    ).fetchone()
                    if found is None:
                        rows.append(self._new_row(changes, *checked_object(obj), now))
                        outcomes.append("created")
                        continue
                    if merge is None:
                        outcomes.append("unchanged")
                        continue
                    stored: JsonObject = _loaded(found[0])
                    merged = merge(stored, obj)
                    # What equals the stored object is a valid object that changes nothing.
                    if merged == stored or (
                        self._overwrite(changes, key, stored, merged, "a merge") is None
                    ):
                        outcomes.append("unchanged")
                    else:
                        outcomes.append("updated")
                except ConfigError as error:
                    raise ConfigError(f"objs[{index}].{error.field}", error.message) from None
            changes.conn.executemany(_INSERT_OBJECT, rows)
        return outcomes

    @staticmethod
    def _new_row(changes: _Changes, key: ObjectKey, new: JsonObject, now: str) -> _ObjectRow:
        refuse_version_on_create(new)
        metadata = new["metadata"]
        metadata["uid"] = metadata.get("uid") or str(uuid.uuid4())
        metadata["creationTimestamp"] = now
        body = changes.stamp("ADDED", new)
        return (*key.columns(), metadata["uid"], changes.version, body)

    def update(self, obj: Mapping[str, object]) -> JsonObject:
        key, new = checked_object(obj)
        with self._write() as changes:
            stored = self._stored(changes.conn, key)
            result = self._decoded(self._replace(changes, key, stored, new), stored)
        return result

    def patch(
        self, kind: str, name: str, patch: Mapping[str, object], namespace: str | None = None
    ) -> JsonObject:
        key = lookup_key(kind, name, namespace)
        if not isinstance(patch, Mapping):
            raise ConfigError(
                "patch", f"must be a mapping (a JSON merge patch), got {type_name(patch)}"
            )
        with self._write() as changes:
            result = self._apply(changes, key, self._stored(changes.conn, key), patch)
        return result

    def bind(
        self, namespace: str, name: str, node_name: str, annotations: Mapping[str, str]
    ) -> JsonObject:
        key = lookup_key("Pod", name, namespace)
        checked_object_name("node_name", node_name)
        extra = checked_annotations("annotations", annotations)
        with self._write() as changes:
            stored = self._stored(changes.conn, key)
            spec = stored.get("spec")
            bound = spec.get("nodeName") if isinstance(spec, Mapping) else None
            if bound:
                raise ConflictError(f"{key} is already bound to node {bound!r}")
            binding = {"spec": {"nodeName": node_name}, "metadata": {"annotations": extra}}
            result = self._apply(changes, key, stored, binding)
        return result

    def _apply(
        self, changes: _Changes, key: ObjectKey, stored: JsonObject, patch: Mapping[str, object]
    ) -> JsonObject:
        """Merge `patch` into `stored`; returns what is stored."""
        written = self._overwrite(changes, key, stored, merge_patch(stored, patch), "a patch")
        return self._decoded(written, stored)

    @staticmethod
    def _overwrite(
        changes: _Changes, key: ObjectKey, stored: JsonObject, obj: object, source: str
    ) -> str | None:
        """`_replace` with `obj`, made by `source` from `stored`, which may not move the object
        to another key."""
        return LocalStore._replace(changes, key, stored, checked_rewrite(key, obj, source))

    @staticmethod
    def _decoded(written: str | None, stored: JsonObject) -> JsonObject:
        """What is stored after `_replace` wrote `written` over `stored`."""
        if written is None:
            return stored
        result: JsonObject = _loaded(written)
        return result

    @staticmethod
    def _replace(
        changes: _Changes, key: ObjectKey, stored: JsonObject, new: JsonObject
    ) -> str | None:
        """Write `new` over `stored` under optimistic concurrency; returns the JSON text
        written, or None when `new` changes nothing (no write, no event, the version stays)."""
        old_meta, new_meta = stored["metadata"], new["metadata"]
        given = new_meta.get("resourceVersion")
        if given and str(given) != old_meta["resourceVersion"]:
            raise ConflictError(
                f"{key} has changed: resourceVersion {given} was given but the stored one is "
                f"{old_meta['resourceVersion']}; read it again and retry"
            )
        uid = new_meta.get("uid")
        if uid and uid != old_meta["uid"]:
            raise ConflictError(
                f"{key}: uid {uid} was given but the stored object's is {old_meta['uid']} "
                "(it was deleted and created again)"
            )
        for field in ("uid", "creationTimestamp", "resourceVersion"):
            new_meta[field] = old_meta[field]
        if new == stored:
            return None
        body = changes.stamp("MODIFIED", new, encoded(stored))
        changes.conn.execute(
            f"UPDATE objects SET resource_version = ?, body = ? {_WHERE_KEY}",
            (changes.version, body, *key.columns()),
        )
        return body

    def delete(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        key = lookup_key(kind, name, namespace)
        with self._write() as changes:
            stored = self._stored(changes.conn, key)
            changes.stamp("DELETED", stored)
            changes.conn.execute(f"DELETE FROM objects {_WHERE_KEY}", key.columns())
        return stored

    # -- watching ----------------------------------------------------------------------

    def events_since(
        self,
        resource_version: int,
        kinds: Collection[str] | None = None,
        field_selectors: Mapping[str, FieldSelector] | None = None,
    ) -> builtins.list[WatchEvent]:
        """See `ClusterStore.events_since`; `field_selectors` narrows kinds as `follow`
        does."""
        since = checked_version("resource_version", resource_version)
        wanted = checked_kinds(kinds)
        selectors = checked_field_selectors(field_selectors, wanted)
        return self._events_after(since, wanted, selectors)[0]

    def watch(
        self,
        kinds: Collection[str] | None,
        since: int,
        timeout_s: float,
        field_selectors: Mapping[str, FieldSelector] | None = None,
    ) -> Iterator[WatchEvent]:
        """See `ClusterStore.watch`; `field_selectors` narrows kinds as `follow` does."""
        start = checked_version("since", since)
        wanted = checked_kinds(kinds)
        deadline = time.monotonic() + checked_seconds("timeout_s", timeout_s, allow_zero=True)
        selectors = checked_field_selectors(field_selectors, wanted)
        return self._follow(wanted, start, deadline, selectors)

    def follow(
        self,
        versions: Mapping[str, int],
        field_selectors: Mapping[str, FieldSelector] | None = None,
    ) -> ChangeFeed:
        wanted = checked_versions(versions)
        return PolledFeed(self, wanted, checked_field_selectors(field_selectors, wanted))

    def _follow(
        self,
        wanted: tuple[str, ...] | None,
        since: int,
        deadline: float,
        selectors: Mapping[str, FieldSelector],
    ) -> Iterator[WatchEvent]:
        while True:
            with self._changed:
                events, since = self._events_after(since, wanted, selectors)
                remaining = deadline - time.monotonic()
                if not events and remaining > 0:
                    # Writers in this process notify; those in others are found by polling.
                    self._changed.wait(min(remaining, self._poll_interval_s))
            yield from events
            if time.monotonic() >= deadline:
                return

    def _events_after(
        self, since: int, wanted: tuple[str, ...] | None, selectors: Mapping[str, FieldSelector]
    ) -> tuple[builtins.list[WatchEvent], int]:
        """The changes after `since` to `wanted` kinds, as narrowed by `selectors`, and the
        version they reach."""
        sql = (
            "SELECT resource_version, type, kind, body, previous FROM changes "
            "WHERE resource_version > ?"
        )
        params: builtins.list[object] = [since]
        if wanted is not None:
            sql += f" AND kind IN ({', '.join('?' * len(wanted))})"
            params += wanted
        with self._transaction(write=False) as conn:
            version = _current_version(conn)
            (oldest,) = conn.execute("SELECT MIN(resource_version) FROM changes").fetchone()
            if since > version:
                raise StoreError(
                    f"resource version {since} is newer than the store's ({version}); "
                    "it was not read from this store"
                )
            first_kept = version + 1 if oldest is None else oldest
            if since < first_kept - 1:
                raise ResourceExpiredError(
                    f"resource version {since} is too old: the change log starts after "
                    f"{first_kept - 1}; list again (list_with_version) and watch from the "
                    "version that returns"
                )
            rows = conn.execute(f"{sql} ORDER BY resource_version", params).fetchall()
        events: builtins.list[WatchEvent] = []
        for rv, event, kind, body, previous in rows:
            obj = _loaded(body)
            if not (selector := selectors.get(kind)):
                events.append(WatchEvent(event, obj, rv))
            elif seen := _narrowed(selector, event, obj, previous):
                events.append(WatchEvent(*seen, rv))
        return events, version

    # -- leases ------------------------------------------------------------------------

    def acquire_lease(
        self, name: str, holder: str, duration_s: float, now: float | None = None
    ) -> bool:
        return self._lease_term(
            "INSERT INTO leases VALUES (:name, :holder, :expires) ON CONFLICT (name) DO UPDATE "
            "SET holder = :holder, expires_at = :expires "
            "WHERE leases.holder = :holder OR leases.expires_at <= :now",
            checked_lease_term(name, holder, duration_s, now),
        )

    def renew_lease(
        self, name: str, holder: str, duration_s: float, now: float | None = None
    ) -> bool:
        return self._lease_term(
            "UPDATE leases SET expires_at = :expires "
            "WHERE name = :name AND holder = :holder AND expires_at > :now",
            checked_lease_term(name, holder, duration_s, now),
        )

    def _lease_term(self, sql: str, term: tuple[str, str, float, float]) -> bool:
        """Run an acquire or renew statement; it changes the lease's row only when allowed."""
        name, holder, expires, now = term
        params = {"name": name, "holder": holder, "expires": expires, "now": now}
        with self._transaction(write=True) as conn:
            changed = conn.execute(sql, params).rowcount
        return changed == 1

    def release_lease(self, name: str, holder: str) -> None:
        lease, who = checked_object_name("name", name), checked_holder(holder)
        with self._transaction(write=True) as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (lease, who))

    def lease_holder(self, name: str, now: float | None = None) -> str | None:
        lease, at = checked_object_name("name", name), checked_now(now)
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT holder FROM leases WHERE name = ? AND expires_at > ?", (lease, at)
            ).fetchone()
        return None if row is None else str(row[0])

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._changed.notify_all()  # waiting watchers wake and find the store closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
