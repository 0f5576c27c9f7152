"""Decoding of the protobuf request bodies typed Go clients send, for Secrets and ConfigMaps.

client-go's typed clientsets send built-in objects as ``application/vnd.kubernetes.protobuf``;
Helm stores its releases in Secrets that way (and ``kubectl create configmap`` sends
ConfigMaps so). Only these two kinds are understood: their fields are few and flat
(ObjectMeta, string and bytes maps, a type, ``immutable``), and the DeleteOptions sent
with deletes; a body of any other kind
decodes to None and is refused with 415. Responses stay JSON, which those clients accept.

The envelope is the magic ``k8s\\0`` then a ``runtime.Unknown`` (typeMeta = 1, raw = 2,
contentEncoding = 3, contentType = 4); field numbers below are those of k8s.io/api's
``generated.proto``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

MAGIC = b"k8s\x00"

_Field = tuple[int, int, int | bytes]  # (number, wire type, value)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Iterator[_Field]:
    """The top-level fields of one protobuf message, in order."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _text(value: int | bytes) -> str:
    assert isinstance(value, bytes)
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, bytes]:
    assert isinstance(value, bytes)
    key, item = "", b""
    for number, _, inner in fields(value):
        if number == 1:
            key = _text(inner)
        elif number == 2 and isinstance(inner, bytes):
            item = inner
    return key, item


def _owner_reference(value: int | bytes) -> dict[str, Any]:
    assert isinstance(value, bytes)
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    flags = {6: "controller", 7: "blockOwnerDeletion"}
    ref: dict[str, Any] = {}
    for number, _, inner in fields(value):
        if number in names:
            ref[names[number]] = _text(inner)
        elif number in flags:
            ref[flags[number]] = bool(inner)
    return ref


def _object_meta(data: bytes) -> dict[str, Any]:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    for number, _, value in fields(data):
        if number in strings:
            if value:  # Go writes empty strings too; empty means unset, as in JSON's omitempty
                meta[strings[number]] = _text(value)
        elif number in (11, 12):
            key, item = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
        elif number == 13:
            meta.setdefault("ownerReferences", []).append(_owner_reference(value))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
        # generation, timestamps, selfLink and managedFields are the server's to set.
    return meta


def _secret(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {}}
    for number, _, value in fields(raw):
        if number == 1:
            assert isinstance(value, bytes)
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            key, item = _entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(item).decode()
        elif number == 3 and value:
            obj["type"] = _text(value)
        elif number == 4:
            key, item = _entry(value)
            obj.setdefault("stringData", {})[key] = item.decode()
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


def _config_map(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}
    for number, _, value in fields(raw):
        if number == 1:
            assert isinstance(value, bytes)
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            key, item = _entry(value)
            obj.setdefault("data", {})[key] = item.decode()
        elif number == 3:
            key, item = _entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(item).decode()
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _delete_options(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
    for number, _, value in fields(raw):
        if number == 1 and isinstance(value, int):
            obj["gracePeriodSeconds"] = value
        elif number == 2 and isinstance(value, bytes):
            names = {1: "uid", 2: "resourceVersion"}
            obj["preconditions"] = {names[n]: _text(v) for n, _, v in fields(value) if n in names}
        elif number == 3:
            obj["orphanDependents"] = bool(value)
        elif number == 4 and value:
            obj["propagationPolicy"] = _text(value)
    return obj


DECODERS = {("v1", "Secret"): _secret, ("v1", "ConfigMap"): _config_map}


def decode(body: bytes) -> dict[str, Any] | None:
    """The object in a Kubernetes protobuf body, or None when its kind is not understood."""
    if not body.startswith(MAGIC):
        return None
    api_version = kind = ""
    raw = b""
    try:
        for number, _, value in fields(body[len(MAGIC) :]):
            if number == 1 and isinstance(value, bytes):
                for inner_number, _, inner in fields(value):
                    if inner_number == 1:
                        api_version = _text(inner)
                    elif inner_number == 2:
                        kind = _text(inner)
            elif number == 2 and isinstance(value, bytes):
                raw = value
        if kind == "DeleteOptions":  # sent with DELETE, as meta.k8s.io/v1 or v1
            return _delete_options(raw)
        decoder = DECODERS.get((api_version, kind))
        return decoder(raw) if decoder is not None else None
    except (ValueError, UnicodeDecodeError, AssertionError):
        return None
