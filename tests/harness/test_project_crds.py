"""The project's generated CRDs (crds/*.yaml) served by the emulator and seen by kopf."""

from __future__ import annotations

import pathlib
from typing import Any

import kopf
import pytest
import yaml

from tests.harness.emulator import ApiError, KubeEmulatorServer
from tests.harness.emulator.hearth_rules import hearth_validator
from tests.harness.kopf_runner import KopfOperator
from tests.harness.waiting import eventually

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
QUICKSTART = ROOT / "examples" / "quickstart"
KINDS = {
    "Account",
    "User",
    "ApiKey",
    "Model",
    "Deployment",
    "DeployedModel",
    "Dataset",
    "FineTuningJob",
}

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not list(CRDS.glob("*.yaml")), reason="crds/ has not been generated"),
]


def test_crds_load_in_one_line_and_are_discovered() -> None:
    with KubeEmulatorServer(crds=[CRDS]) as api:
        served = {
            rtype.kind: rtype
            for rtype in api.emulator.registry.all()
            if rtype.group == "hearth.dev"
        }
        assert set(served) >= KINDS
        assert not served["Account"].namespaced and served["Deployment"].namespaced
        assert all(rtype.version == "v1alpha1" for rtype in served.values())


@pytest.mark.skipif(not QUICKSTART.is_dir(), reason="no quickstart examples")
def test_quickstart_manifests_are_accepted_and_cel_rules_enforced() -> None:
    with KubeEmulatorServer(crds=[CRDS], validators=[hearth_validator()]) as api:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
        applied = api.apply_yaml(QUICKSTART)
        assert {obj["kind"] for obj in applied} >= {"Account", "Deployment", "Model"}
        deployment = next(obj for obj in applied if obj["kind"] == "Deployment")
        broken: dict[str, Any] = yaml.safe_load(yaml.safe_dump(deployment))
        broken["spec"]["minReplicaCount"] = broken["spec"].get("maxReplicaCount", 1) + 1
        with pytest.raises(ApiError) as exc:
            api.apply(broken)
        assert exc.value.code == 422
        assert (
            "maxReplicaCount must be greater than or equal to minReplicaCount" in exc.value.message
        )


@pytest.mark.skipif(not QUICKSTART.is_dir(), reason="no quickstart examples")
def test_hearth_deployment_scale_subresource() -> None:
    import kubernetes

    with (
        KubeEmulatorServer(crds=[CRDS]) as api,
        kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig_path)) as client,
    ):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
        api.apply_yaml(QUICKSTART / "20-deployment.yaml")
        custom = kubernetes.client.CustomObjectsApi(client)
        args = ("hearth.dev", "v1alpha1", "acme", "deployments", "smollm2-cpu")
        custom.patch_namespaced_custom_object_scale(*args, {"spec": {"replicas": 2}})
        deployment: Any = custom.get_namespaced_custom_object(*args)
        assert deployment["spec"]["replicaCount"] == 2
        assert deployment["metadata"]["generation"] == 2


def test_kopf_watches_a_cluster_scoped_project_kind() -> None:
    registry = kopf.OperatorRegistry()
    seen: list[str] = []

    @kopf.on.create("hearth.dev", "v1alpha1", "accounts", registry=registry, id="account")
    def on_account(name: str, **_: Any) -> None:
        seen.append(name)

    with KubeEmulatorServer(crds=[CRDS]) as api, KopfOperator(api, registry):
        api.apply_yaml(QUICKSTART / "00-account.yaml")
        eventually(lambda: seen == ["acme"], timeout=20)
