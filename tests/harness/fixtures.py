"""Reusable pytest fixtures: an emulated API with the project's CRDs, clients, a kubelet.

Use them from any conftest.py with ``pytest_plugins = ['tests.harness.fixtures']``
(or import the fixtures you need). Container logs are printed at teardown, so pytest
shows them (captured) exactly when a test fails.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import kubernetes
import pytest

from tests.harness.emulator import KubeEmulatorServer
from tests.harness.kubelet import ProcessKubelet

PROJECT_CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture
def kube_api() -> Iterator[KubeEmulatorServer]:
    """The emulated API server with the project's CRDs loaded (when generated)."""
    crds = [PROJECT_CRDS] if list(PROJECT_CRDS.glob("*.yaml")) else []
    with KubeEmulatorServer(crds=crds) as server:
        yield server
        assert server.internal_errors == [], "the emulator answered 500: see the tracebacks"


@pytest.fixture
def kube_client(kube_api: KubeEmulatorServer) -> Iterator[kubernetes.client.ApiClient]:
    config = str(kube_api.kubeconfig_path)
    with kubernetes.config.new_client_from_config(config_file=config) as client:
        yield client


@pytest.fixture
def process_kubelet(
    kube_api: KubeEmulatorServer, tmp_path: pathlib.Path
) -> Iterator[ProcessKubelet]:
    with ProcessKubelet(kube_api, log_dir=tmp_path / "pod-logs") as kubelet:
        try:
            yield kubelet
        finally:
            print(kubelet.dump_logs())  # shown by pytest only when the test fails


@pytest.fixture
def fake_kubelet(kube_api: KubeEmulatorServer) -> Iterator[ProcessKubelet]:
    """Marks every pod Running and Ready without running anything (control-plane tests)."""
    with ProcessKubelet(kube_api, fake_ready=True) as kubelet:
        yield kubelet
