"""Fixtures: the real operator (kopf) against the emulated API, with a process kubelet.

The Kubernetes API server and the kubelet are the only emulated parts (see
docs/testing-harness.md). Component tests run pods from ``stub_server.py``; the
end-to-end test runs the real hearth-server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from hearth_operator.constants import api_key_secret_name
from hearth_operator.context import Context
from hearth_operator.kube import Kube
from hearth_operator.planning.deployment import api_key_from_secret
from hearth_operator.runtime import build_registry
from hearth_operator.settings import Settings
from tests.harness.emulator import KubeEmulatorServer
from tests.harness.emulator.hearth_rules import hearth_validator
from tests.harness.kopf_runner import KopfOperator
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
STUB = Path(__file__).with_name("stub_server.py")

Obj = dict[str, Any]


class Cluster:
    """The emulated cluster as a test sees it: apply manifests, read objects, wait."""

    def __init__(self, api: KubeEmulatorServer, settings: Settings, records: Path) -> None:
        self.api = api
        self.settings = settings
        self.records = records
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(api.kubeconfig_path), client_configuration=configuration
        )
        self.kube = Kube(kubernetes.client.ApiClient(configuration))

    def context(self) -> Context:
        return Context(kube=self.kube, settings=self.settings)

    @contextmanager
    def operator(self) -> Iterator[Context]:
        ctx = self.context()
        with KopfOperator(self.api, build_registry(ctx, login=False)):
            yield ctx

    def apply(self, manifest: str | Obj) -> list[Obj]:
        documents = yaml.safe_load_all(manifest) if isinstance(manifest, str) else [manifest]
        return [self.kube.create(doc) for doc in documents if doc]

    def get(self, kind: str, name: str, namespace: str | None = "acme") -> Obj | None:
        return self.kube.get(kind, name, namespace)

    def wait(
        self,
        kind: str,
        name: str,
        predicate: Callable[[Obj], Any],
        *,
        namespace: str | None = "acme",
        timeout: float = 60.0,
    ) -> Obj:
        def check() -> Obj | None:
            obj = self.get(kind, name, namespace)
            return obj if obj is not None and predicate(obj) else None

        try:
            return eventually(check, timeout=timeout, interval=0.1)
        except AssertionError as error:
            seen = self.get(kind, name, namespace)
            shown = json.dumps((seen or {}).get("status"), indent=1)[:3000]
            raise AssertionError(f"{kind} {name} never matched; status: {shown}") from error

    def wait_state(self, kind: str, name: str, state: str, **kwargs: Any) -> Obj:
        return self.wait(
            kind, name, lambda o: (o.get("status") or {}).get("state") == state, **kwargs
        )

    def api_key(self, deployment: str, namespace: str = "acme") -> str:
        """The token the Deployment's servers require (from the Secret the operator made)."""
        token = api_key_from_secret(self.get("Secret", api_key_secret_name(deployment), namespace))
        assert token is not None, f"deployment {namespace}/{deployment} has no API-key Secret"
        return token

    def pods(self, deployment: str, namespace: str = "acme") -> list[Obj]:
        return self.kube.list("Pod", namespace, labels={"hearth.dev/deployment": deployment})

    def adapter_calls(self) -> list[Obj]:
        calls = []
        for path in sorted(self.records.glob("*.jsonl")):
            calls += [
                {"pod_ip": path.stem, **json.loads(line)} for line in path.read_text().splitlines()
            ]
        return calls


@contextmanager
def emulated_cluster(settings: Settings, workdir: Path) -> Iterator[Cluster]:
    """The emulated API server with Hearth's CRDs (and CEL), and the operator's namespace."""
    with KubeEmulatorServer(crds=[ROOT / "crds"], validators=[hearth_validator()]) as api:
        cluster = Cluster(api, settings, workdir)
        # The operator's namespace exists wherever the chart installed it (events go there).
        cluster.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": settings.namespace}}
        )
        yield cluster
        assert api.internal_errors == []


def local_process_settings(pvc_root: Path, **overrides: Any) -> Settings:
    """Settings that run the real hearth-server and hearth-trainer as local processes."""
    from hearth_server.models.resolve import cache_dir

    values: dict[str, Any] = {
        "server_command": (sys.executable, "-m", "hearth_server.cli"),
        "trainer_command": (sys.executable, "-m", "hearth_trainer.cli"),
        "server_env": {"HF_HUB_OFFLINE": "1"},
        "pvc_mount_root": str(pvc_root),
        "model_cache_path": str(cache_dir()),
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    records = tmp_path / "records"
    records.mkdir()
    settings = Settings(
        server_command=(sys.executable, str(STUB)),
        server_env={"STUB_RECORD_DIR": str(records)},
        resync_seconds=1.0,
        adapter_load_timeout=10.0,
    )
    with emulated_cluster(settings, records) as made:
        yield made


@pytest.fixture
def kubelet(cluster: Cluster, tmp_path: Path) -> Iterator[ProcessKubelet]:
    with ProcessKubelet(cluster.api, log_dir=tmp_path / "pod-logs", backoff_max=1.0) as running:
        yield running
