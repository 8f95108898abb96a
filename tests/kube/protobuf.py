"""Decoding of the protobuf bodies clients send (client-go's typed clients, in kubectl and helm,
send core kinds as protobuf): just enough for Secrets, which Helm keeps its releases in, and the
ConfigMaps and Namespaces `kubectl create` makes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """A body that is not a protobuf Secret; the message says what is wrong."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ProtobufError("protobuf body: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message: ints for varints, bytes for the rest."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError(f"protobuf body: field {number} overruns the message")
            yield number, data[pos : pos + length]
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            yield number, data[pos : pos + size]
            pos += size
        else:
            raise ProtobufError(f"protobuf body: unsupported wire type {wire} in field {number}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("protobuf body: a string field holds a number")
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, bytes]:
    """A map entry: key is field 1, value field 2."""
    if not isinstance(value, bytes):
        raise ProtobufError("protobuf body: a map entry holds a number")
    entry = dict(_fields(value))
    raw = entry.get(2, b"")
    return _text(entry.get(1, b"")), raw if isinstance(raw, bytes) else b""


# ObjectMeta's string fields by number (k8s.io/apimachinery generated.proto).
_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
_META_MAPS = {11: "labels", 12: "annotations"}
_META_FINALIZERS = 14


def _object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for number, value in _fields(data):
        if number in _META_STRINGS and value:  # proto2 sends unset strings as empty ones
            meta[_META_STRINGS[number]] = _text(value)
        elif number in _META_MAPS:
            key, raw = _entry(value)
            meta.setdefault(_META_MAPS[number], {})[key] = raw.decode()
        elif number == _META_FINALIZERS:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _string_map(value: int | bytes, into: dict[str, Any], field: str) -> None:
    key, raw = _entry(value)
    into.setdefault(field, {})[key] = raw.decode()


def _bytes_map(value: int | bytes, into: dict[str, Any], field: str) -> None:
    key, raw = _entry(value)
    into.setdefault(field, {})[key] = base64.b64encode(raw).decode()


def _secret(number: int, value: int | bytes, obj: dict[str, Any]) -> None:
    if number == 2:
        _bytes_map(value, obj, "data")
    elif number == 3:
        obj["type"] = _text(value)
    elif number == 4:
        _string_map(value, obj, "stringData")
    elif number == 5:
        obj["immutable"] = bool(value)


def _config_map(number: int, value: int | bytes, obj: dict[str, Any]) -> None:
    if number == 2:
        _string_map(value, obj, "data")
    elif number == 3:
        _bytes_map(value, obj, "binaryData")
    elif number == 4:
        obj["immutable"] = bool(value)


def _namespace(number: int, value: int | bytes, obj: dict[str, Any]) -> None:
    if number == 2 and isinstance(value, bytes):  # NamespaceSpec: finalizers = 1
        obj["spec"] = {"finalizers": [_text(v) for n, v in _fields(value) if n == 1]}


def _delete_options(number: int, value: int | bytes, obj: dict[str, Any]) -> None:
    if number == 1:
        obj["gracePeriodSeconds"] = value
    elif number == 2 and isinstance(value, bytes):  # Preconditions: uid = 1, resourceVersion = 2
        names = {1: "uid", 2: "resourceVersion"}
        obj["preconditions"] = {names[n]: _text(v) for n, v in _fields(value) if n in names and v}
    elif number == 4:
        obj["propagationPolicy"] = _text(value)
    elif number == 5:
        obj.setdefault("dryRun", []).append(_text(value))


# Each kind's fields by number (k8s.io/api/core/v1 and apimachinery generated.proto); field 1
# of the object kinds is their metadata.
_OBJECT_KINDS = {"Secret": _secret, "ConfigMap": _config_map, "Namespace": _namespace}
_OPTION_KINDS = {"DeleteOptions": _delete_options}


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object (`k8s\\0` + runtime.Unknown); only the kinds
    in _OBJECT_KINDS and _OPTION_KINDS are understood."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body: missing the k8s\\0 prefix")
    unknown = dict(_fields(body[len(MAGIC) :]))
    type_meta = unknown.get(1, b"")
    raw = unknown.get(2, b"")
    if not isinstance(type_meta, bytes) or not isinstance(raw, bytes):
        raise ProtobufError("protobuf body: malformed envelope")
    type_fields = dict(_fields(type_meta))
    api_version, kind = _text(type_fields.get(1, b"")), _text(type_fields.get(2, b""))
    obj: dict[str, Any] = {"apiVersion": api_version or "v1", "kind": kind}
    if kind in _OPTION_KINDS:
        for number, value in _fields(raw):
            _OPTION_KINDS[kind](number, value, obj)
        return obj
    if kind not in _OBJECT_KINDS:
        known = ", ".join([*_OBJECT_KINDS, *_OPTION_KINDS])
        raise ProtobufError(f"protobuf body: kind {kind!r} is not supported, only {known}")
    obj["metadata"] = {}
    for number, value in _fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        else:
            _OBJECT_KINDS[kind](number, value, obj)
    return obj
