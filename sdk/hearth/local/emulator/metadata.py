"""Validation of object metadata, as the API server's ObjectMeta validation does it.

These are the rules an operator most easily breaks without noticing until it meets
a real cluster: label values of at most 63 characters (a full sha256 hex digest as a
`spec-hash` label is refused), qualified label and annotation keys, the name formats
of namespaces and services (DNS-1123 / DNS-1035 labels, at most 63 characters), and
owner references (all identifying fields present, at most one controller).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hearth.local.emulator.resources import ResourceType

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ANNOTATIONS_LIMIT = 256 * 1024

Causes = list[tuple[str, str]]


def _key_errors(field: str, key: str) -> Causes:
    prefix, _, name = key.rpartition("/")
    causes: Causes = []
    if "/" in key and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        causes.append(
            (field, f'Invalid value: "{key}": prefix part must be a lowercase RFC 1123 subdomain')
        )
    if not name or len(name) > 63 or not _NAME.match(name):
        causes.append(
            (
                field,
                f'Invalid value: "{key}": name part must consist of '
                "alphanumeric characters, '-', '_' or '.', and must start and "
                "end with an alphanumeric character, at most 63 characters",
            )
        )
    return causes


def validate_name(rtype: ResourceType, name: str) -> Causes:
    if rtype.group == "" and rtype.plural == "namespaces":
        pattern, limit, what = _DNS1123_LABEL, 63, "RFC 1123 label"
    elif rtype.group == "" and rtype.plural == "services":
        pattern, limit, what = _DNS1035_LABEL, 63, "RFC 1035 label"
    else:
        pattern, limit, what = _SUBDOMAIN, 253, "RFC 1123 subdomain"
    if len(name) > limit:
        return [
            ("metadata.name", f'Invalid value: "{name}": must be no more than {limit} characters')
        ]
    if not pattern.match(name):
        return [
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase {what} must consist '
                "of lower case alphanumeric characters, '-' or '.', and must "
                "start and end with an alphanumeric character",
            )
        ]
    return []


def validate_metadata(rtype: ResourceType, meta: dict[str, Any]) -> Causes:
    causes: Causes = []
    for key, value in (meta.get("labels") or {}).items():
        causes += _key_errors("metadata.labels", str(key))
        text = "" if value is None else str(value)
        if text and (len(text) > 63 or not _NAME.match(text)):
            causes.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{text}": a valid label must be '
                    "an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and "
                    "end with an alphanumeric character, at most "
                    "63 characters",
                )
            )
    annotations = meta.get("annotations") or {}
    for key in annotations:
        causes += _key_errors("metadata.annotations", str(key))
    if len(json.dumps(annotations)) > _ANNOTATIONS_LIMIT:
        causes.append(("metadata.annotations", "Too long: must have at most 262144 bytes"))
    refs = meta.get("ownerReferences") or []
    for index, ref in enumerate(refs):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(field):
                causes.append((f"metadata.ownerReferences[{index}].{field}", "Required value"))
    if sum(1 for ref in refs if ref.get("controller")) > 1:
        causes.append(
            (
                "metadata.ownerReferences",
                "Invalid value: only one reference can have Controller set to true",
            )
        )
    return causes
