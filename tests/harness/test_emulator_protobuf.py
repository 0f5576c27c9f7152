"""Protobuf bodies (what typed Go clients such as Helm's release storage send) for Secrets,
ConfigMaps and DeleteOptions; the kinds Helm installs (apps/v1 Deployment, policy/v1 PDB,
networking.k8s.io/v1 Ingress) are served."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.harness.emulator import KubeEmulatorServer
from tests.harness.emulator.protobuf import MAGIC, decode

PROTOBUF = "application/vnd.kubernetes.protobuf"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: bytes | int | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _entry(number: int, key: str, value: bytes | str) -> bytes:
    return _field(number, _field(1, key) + _field(2, value))


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version) + _field(2, kind)
    return MAGIC + _field(1, type_meta) + _field(2, raw) + _field(3, "") + _field(4, "")


def _secret(namespace: str = "") -> bytes:
    # Go writes every string field, empty ones too (namespace "" here: unset).
    meta = (
        _field(1, "sh.helm.release.v1.demo.v1")
        + _field(3, namespace)
        + _field(7, 0)
        + _entry(11, "owner", "helm")
        + _entry(11, "status", "deployed")
        + _field(14, "example.dev/cleanup")
    )
    raw = (
        _field(1, meta)
        + _entry(2, "release", b"\x00\xffbinary")
        + _field(3, "helm.sh/release.v1")
        + _field(5, 1)
    )
    return _envelope("v1", "Secret", raw)


def test_decode_secret() -> None:
    assert decode(_secret()) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "sh.helm.release.v1.demo.v1",
            "labels": {"owner": "helm", "status": "deployed"},
            "finalizers": ["example.dev/cleanup"],
        },
        "data": {"release": base64.b64encode(b"\x00\xffbinary").decode()},
        "type": "helm.sh/release.v1",
        "immutable": True,
    }


def test_decode_config_map_and_delete_options() -> None:
    meta = _field(1, "settings") + _field(3, "default") + _entry(12, "note", "x")
    raw = _field(1, meta) + _entry(2, "level", "debug") + _entry(3, "blob", b"\x01")
    assert decode(_envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "annotations": {"note": "x"}},
        "data": {"level": "debug"},
        "binaryData": {"blob": "AQ=="},
    }
    options = _field(1, 0) + _field(4, "Background")
    assert decode(_envelope("meta.k8s.io/v1", "DeleteOptions", options)) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Background",
    }


@pytest.mark.parametrize(
    "body",
    [
        _envelope("v1", "Pod", _field(1, _field(1, "p"))),  # a kind not decoded
        b'{"kind": "Secret"}',  # no magic
        MAGIC + b"\x0a\xff",  # truncated
    ],
)
def test_undecodable_bodies_are_none(body: bytes) -> None:
    assert decode(body) is None


def test_protobuf_secret_is_stored_and_other_kinds_are_415() -> None:
    with KubeEmulatorServer() as api:
        with httpx.Client(base_url=api.url) as http:
            created = http.post(
                "/api/v1/namespaces/default/secrets",
                content=_secret(),
                headers={"Content-Type": PROTOBUF, "Accept": "application/json"},
            )
            assert created.status_code == 201, created.text
            assert created.json()["metadata"]["namespace"] == "default"
            stored = api.get("v1", "Secret", "sh.helm.release.v1.demo.v1", "default")
            assert stored is not None and stored["type"] == "helm.sh/release.v1"
            refused = http.post(
                "/api/v1/namespaces/default/pods",
                content=_envelope("v1", "Pod", _field(1, _field(1, "p"))),
                headers={"Content-Type": PROTOBUF},
            )
            assert refused.status_code == 415
            assert "protobuf only for Secrets, ConfigMaps and DeleteOptions" in refused.text
            for path in (
                "/apis/apps/v1/namespaces/default/deployments",
                "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
                "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            ):
                assert http.get(path).status_code == 200, path
        assert api.internal_errors == []
