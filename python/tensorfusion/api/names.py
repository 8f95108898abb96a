"""Kubernetes name grammars (object names, label keys and values), checked the way the API
server checks them, so a manifest we accept is one Kubernetes accepts too."""

from __future__ import annotations

import re

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def dns_label_problem(value: str) -> str | None:
    """Why `value` is not an RFC 1123 label (pool names, namespaces), or None."""
    if len(value) > 63:
        return f"must be at most 63 characters (got {len(value)})"
    if not _DNS_LABEL.match(value):
        return (
            f"{value!r} must consist of lower case alphanumeric characters or '-', "
            "and start and end with an alphanumeric character"
        )
    return None


def dns_subdomain_problem(value: str) -> str | None:
    """Why `value` is not an RFC 1123 subdomain (most object names), or None."""
    if len(value) > 253:
        return f"must be at most 253 characters (got {len(value)})"
    if not _DNS_SUBDOMAIN.match(value):
        return (
            f"{value!r} must consist of lower case alphanumeric characters, '-' or '.', "
            "and start and end with an alphanumeric character"
        )
    return None


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a label/annotation key (`[prefix/]name`), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return f"key {key!r} has an empty prefix"
    if prefix and (problem := dns_subdomain_problem(prefix)):
        return f"key prefix {problem}"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            f"key {key!r}: the name part must be 1-63 characters of alphanumerics, "
            "'-', '_' or '.', starting and ending with an alphanumeric character"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None."""
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            f"label value {value!r} must be at most 63 characters of alphanumerics, "
            "'-', '_' or '.', starting and ending with an alphanumeric character"
        )
    return None


def is_decimal(text: str) -> bool:
    """True for a non-empty run of ASCII digits; str.isdigit alone also takes superscripts and
    other scripts' digits, which Kubernetes does not read as numbers."""
    return text.isascii() and text.isdigit()
