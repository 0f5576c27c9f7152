"""kubectl against the emulated API (skipped where no kubectl binary is installed)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from tests.harness.emulator import KubeEmulatorServer
from tests.harness.waiting import eventually

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which('kubectl') is None, reason='no kubectl on this machine'),
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
    manifest = tmp_path / 'demo.yaml'
    manifest.write_text(MANIFESTS)

    def kubectl(*args: str) -> str:
        # No OpenAPI documents are served: client-side schema validation must be off.
        done = subprocess.run(['kubectl', '--kubeconfig', str(api.kubeconfig_path), *args],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert 'created' in kubectl('apply', '--validate=false', '-f', str(manifest))
    assert 'unchanged' in kubectl('apply', '--validate=false', '-f', str(manifest))
    assert 'w1' in kubectl('get', 'wd')  # a CRD short name, from discovery
    kubectl('label', 'configmap', 'settings', 'tier=web')
    assert kubectl('get', 'cm', '-l', 'app=demo,tier=web', '-o', 'name') == \
        'configmap/settings\n'
    kubectl('delete', '-f', str(manifest))
    eventually(lambda: api.get('example.dev/v1', 'Widget', 'w1', 'default') is None)
    assert api.get('v1', 'ConfigMap', 'settings', 'default') is None
