"""kubectl against the emulated API (the binary from `make tools`; skipped without it)."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from tests.harness.emulator import KubeEmulatorServer
from tests.harness.tools import kubectl_path, missing_reason
from tests.harness.waiting import eventually

KUBECTL = kubectl_path()

pytestmark = [
    pytest.mark.slow,  # runs the kubectl binary
    pytest.mark.timeout(120),
    pytest.mark.skipif(KUBECTL is None, reason=missing_reason("kubectl")),
]

MANIFESTS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {app: demo}}
data: {level: debug}
---
apiVersion: example.dev/v1
kind: Widget
metadata: {name: w1}
spec: {size: M}
"""


def test_kubectl_apply_get_label_delete(api: KubeEmulatorServer, tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(MANIFESTS)

    def kubectl(*args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(api.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode == 0) is ok, done.stderr
        return done.stdout + done.stderr

    assert "created" in kubectl("apply", "-f", str(manifest))
    assert "unchanged" in kubectl("apply", "-f", str(manifest))
    assert "w1" in kubectl("get", "wd")  # a CRD short name, from discovery
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        MANIFESTS.replace("level: debug", "level: info").replace("size: M", "size: L")
    )
    assert "configured" in kubectl("apply", "-f", str(changed))
    assert kubectl("get", "cm", "settings", "-o", "jsonpath={.data.level}") == "info"
    # kubectl asks for server-side field validation; unknown fields are refused.
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(MANIFESTS.split("---")[1].replace("size: M", "size: M, colour: red"))
    assert 'unknown field "spec.colour"' in kubectl("apply", "-f", str(unknown), ok=False)
    kubectl("label", "configmap", "settings", "tier=web")
    assert kubectl("get", "cm", "-l", "app=demo,tier=web", "-o", "name") == "configmap/settings\n"
    kubectl("delete", "-f", str(manifest))
    eventually(lambda: api.get("example.dev/v1", "Widget", "w1", "default") is None)
    assert api.get("v1", "ConfigMap", "settings", "default") is None
