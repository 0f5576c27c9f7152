"""`helm install`, `helm upgrade` and `helm uninstall` of charts/hearth against the emulated
API server (tests/harness/emulator), with the real helm 4 binary.

Helm 4 applies server-side by default; the emulator has no server-side apply, so these runs
pass `--server-side=false` (Helm's client-side three-way merge, as in Helm 3). The emulator
stores what Helm creates (Deployments included) but runs no Deployment controller: these
tests check the objects, not running pods. Each helm call takes well under a second here.
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.chart.helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUES,
    Obj,
    container,
    env_of,
    helm,
    needs_helm,
    render,
)
from tests.harness.emulator import KubeEmulatorServer
from tests.harness.tools import kubectl_path
from tests.harness.waiting import eventually

pytestmark = [needs_helm, pytest.mark.timeout(120)]

CLIENT_SIDE = "--server-side=false"
CLUSTER_KINDS = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


@pytest.fixture
def api() -> Iterator[KubeEmulatorServer]:
    with KubeEmulatorServer() as server:
        yield server
        assert server.internal_errors == []


def run_helm(api: KubeEmulatorServer, *args: str) -> str:
    done = helm(*args, "--namespace", NAMESPACE, kubeconfig=api.kubeconfig_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def stored(api: KubeEmulatorServer, obj: Obj) -> Obj | None:
    namespace = None if obj["kind"] in CLUSTER_KINDS else NAMESPACE
    return api.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace)


def release(api: KubeEmulatorServer) -> list[Obj]:
    """Helm's release records: Secrets in the release namespace (the default storage)."""
    return api.list("v1", "Secret", NAMESPACE, label_selector=f"owner=helm,name={RELEASE}")


def release_manifest(secret: Obj) -> str:
    """What Helm recorded: base64 (the Secret) of base64 of gzipped JSON."""
    payload = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    manifest: str = json.loads(gzip.decompress(payload))["manifest"]
    return manifest


def test_install_upgrade_uninstall(api: KubeEmulatorServer) -> None:
    expected = render(include_crds=True)
    output = run_helm(api, "install", RELEASE, str(CHART), "--create-namespace", CLIENT_SIDE)
    assert "STATUS: deployed" in output
    assert "kubectl -n hearth-system rollout status" in output  # NOTES.txt's first command
    assert api.get("v1", "Namespace", NAMESPACE) is not None
    for obj in expected:  # every rendered object, CRDs from crds/ included, is in the API
        assert stored(api, obj) is not None, f"{obj['kind']}/{obj['metadata']['name']} missing"
    gateway = api.get("apps/v1", "Deployment", "hearth-gateway", NAMESPACE)
    assert gateway is not None and gateway["spec"]["replicas"] == 1
    assert (
        gateway["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    )  # Helm owns it
    [record] = release(api)
    assert record["metadata"]["labels"]["status"] == "deployed"
    assert "kind: Deployment" in release_manifest(record)
    # The CRDs are served at once: an Account can be created (nothing reconciles it here).
    api.create({"apiVersion": "hearth.dev/v1alpha1", "kind": "Account",
                "metadata": {"name": "acme"}, "spec": {"displayName": "Acme"}})  # fmt: skip

    again = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, CLIENT_SIDE,
                 kubeconfig=api.kubeconfig_path)  # fmt: skip
    assert again.returncode != 0 and "cannot reuse a name that is still in use" in again.stderr

    # Upgrade: a shared ledger and Redis, an Ingress, another platform account.
    operator_before = api.get("apps/v1", "Deployment", "hearth-operator", NAMESPACE)
    assert operator_before is not None
    run_helm(api, "upgrade", RELEASE, str(CHART), CLIENT_SIDE,
             "--values", str(VALUES / "postgres-redis-ingress.yaml"),
             "--set", "platformAccount=shared")  # fmt: skip
    gateway = api.get("apps/v1", "Deployment", "hearth-gateway", NAMESPACE)
    assert gateway is not None and gateway["spec"]["replicas"] == 2
    env = env_of(gateway)
    assert env["HEARTH_GATEWAY_LEDGER_URL"] == {
        "secretKeyRef": {"name": "hearth-ledger", "key": "database-url"}
    }
    assert env["HEARTH_PLATFORM_ACCOUNT"] == "shared"
    assert "HEARTH_GATEWAY_LEDGER_PATH" not in env  # removed by the three-way merge
    assert not any(m["name"] == "ledger" for m in container(gateway)["volumeMounts"])
    assert api.get("networking.k8s.io/v1", "Ingress", "hearth-gateway", NAMESPACE) is not None
    assert api.get("policy/v1", "PodDisruptionBudget", "hearth-gateway", NAMESPACE) is not None
    config = api.get("v1", "ConfigMap", "hearth-operator-config", NAMESPACE)
    assert config is not None and "platform_account: shared" in config["data"]["settings.yaml"]
    operator = api.get("apps/v1", "Deployment", "hearth-operator", NAMESPACE)
    assert operator is not None
    annotation = "checksum/config"
    assert (
        operator["spec"]["template"]["metadata"]["annotations"][annotation]
        != operator_before["spec"]["template"]["metadata"]["annotations"][annotation]
    )  # the operator restarts to read its new settings
    # The ledger's claim left the manifest, but its resource policy keeps the usage data.
    assert api.get("v1", "PersistentVolumeClaim", "hearth-gateway-ledger", NAMESPACE)
    assert sorted(r["metadata"]["labels"]["status"] for r in release(api)) == [
        "deployed",
        "superseded",
    ]

    run_helm(api, "uninstall", RELEASE)
    upgraded = render([VALUES / "postgres-redis-ingress.yaml"], ["platformAccount=shared"])

    def all_removed() -> bool:
        return all(stored(api, obj) is None for obj in upgraded)

    eventually(all_removed, timeout=30)
    assert release(api) == []
    # Helm never deletes CRDs; so the Accounts (and on a cluster their namespaces) stay.
    assert len(api.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")) == 8
    assert api.get("hearth.dev/v1alpha1", "Account", "acme") is not None
    assert api.get("v1", "PersistentVolumeClaim", "hearth-gateway-ledger", NAMESPACE)


@pytest.mark.skipif(kubectl_path() is None, reason="no kubectl: run `make tools`")
def test_a_deployed_model_left_holding_its_finalizer_is_released_as_documented(
    api: KubeEmulatorServer,
) -> None:
    """docs/operating.md: after uninstalling, a DeployedModel whose adapter was loaded keeps
    the hearth.dev/unload-adapters finalizer; the documented kubectl patch releases it."""
    run_helm(api, "install", RELEASE, str(CHART), "--create-namespace", CLIENT_SIDE)
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    api.create({
        "apiVersion": "hearth.dev/v1alpha1", "kind": "DeployedModel",
        "metadata": {"name": "lora-on-cpu", "namespace": "acme",
                     "finalizers": ["hearth.dev/unload-adapters"]},
        "spec": {"model": "lora", "deployment": "cpu", "modelKind": "HF_PEFT_ADDON"},
    })  # fmt: skip
    api.create({
        "apiVersion": "hearth.dev/v1alpha1", "kind": "DeployedModel",
        "metadata": {"name": "base-on-cpu", "namespace": "acme"},
        "spec": {"model": "base", "deployment": "cpu", "modelKind": "HF_BASE_MODEL"},
    })  # fmt: skip
    run_helm(api, "uninstall", RELEASE)

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            [str(kubectl_path()), "--kubeconfig", str(api.kubeconfig_path), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    kubectl("delete", "deployedmodels", "--all", "-n", "acme", "--wait=false")
    # Without a finalizer (base models, addons never loaded) deletion needs no operator.
    eventually(
        lambda: api.get("hearth.dev/v1alpha1", "DeployedModel", "base-on-cpu", "acme") is None
    )
    stuck = api.get("hearth.dev/v1alpha1", "DeployedModel", "lora-on-cpu", "acme")
    assert stuck is not None and stuck["metadata"]["deletionTimestamp"]
    # The listing of docs/operating.md: DeployedModels holding a finalizer.
    listed = kubectl("get", "deployedmodels", "-A", "-o",
                     "jsonpath={range .items[?(@.metadata.finalizers)]}"
                     "{.metadata.namespace} {.metadata.name}{\"\\n\"}{end}")  # fmt: skip
    assert listed.splitlines() == ["acme lora-on-cpu"]
    kubectl("patch", "deployedmodel", "lora-on-cpu", "-n", "acme", "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}')  # fmt: skip
    eventually(
        lambda: api.get("hearth.dev/v1alpha1", "DeployedModel", "lora-on-cpu", "acme") is None
    )
