# The kubernetes client types bodies as models and fields as Optional; dicts work at runtime.
# mypy: disable-error-code="arg-type, union-attr"
"""The reusable fixtures work as a plugin would use them."""

from __future__ import annotations

import kubernetes
import pytest

from tests.harness import KubeEmulatorServer, ProcessKubelet, eventually
from tests.harness.fixtures import fake_kubelet, kube_api, kube_client  # noqa: F401

pytestmark = pytest.mark.timeout(30)


def test_fixtures_give_an_api_a_client_and_a_kubelet(
    kube_api: KubeEmulatorServer,  # noqa: F811
    kube_client: kubernetes.client.ApiClient,  # noqa: F811
    fake_kubelet: ProcessKubelet,  # noqa: F811
) -> None:
    core = kubernetes.client.CoreV1Api(kube_client)
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}]},
        },
    )
    eventually(lambda: core.read_namespaced_pod("p", "default").status.phase == "Running")
