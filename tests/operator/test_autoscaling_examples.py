"""examples/autoscaling: a HorizontalPodAutoscaler and a KEDA ScaledObject that drive a
Hearth Deployment's scale subresource.

What is checked, and how (docs/operator.md says the same):
- the Hearth Deployments: Hearth's own validator (schema and CEL), as for every example;
- the HPA: strictly against the Kubernetes 1.35 OpenAPI schema of autoscaling/v2
  (kubernetes-validate, which ships the upstream schemas);
- the ScaledObject: KEDA's schema is not available offline, so its fields are checked by
  this test against the ScaledObject fields KEDA v2 defines, and the HPA behaviour it
  passes through (``advanced.horizontalPodAutoscalerConfig``) against the autoscaling/v2
  schema as part of an HPA;
- the scale subresource they drive, in the emulated API with the real operator: the
  Scale's selector is the one of the Deployment's pods, a write to it (what an HPA or
  KEDA does) changes the replicas the operator runs, and Hearth's autoscaler stays off.
Neither the HPA controller nor KEDA runs here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from hearth.manifests import load_documents
from hearth.validation import default_validator
from hearth_operator.constants import ANNOTATION_AUTOSCALER, AUTOSCALER_DISABLED
from hearth_operator.settings import Settings
from tests.harness.waiting import eventually
from tests.operator.conftest import STUB, emulated_cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "autoscaling"
KUBERNETES_VERSION = "1.35.0"  # the kubectl the project installs

#: The fields of a KEDA v2 ScaledObject (keda.sh/v1alpha1), by object.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
SCALE_TARGET_REF = {"apiVersion", "kind", "name", "envSourceContainerName"}
ADVANCED = {"horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount", "scalingModifiers"}
HPA_CONFIG = {"name", "behavior"}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
PROMETHEUS_METADATA = {"serverAddress", "query", "threshold", "activationThreshold"}


def documents(name: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in load_documents((EXAMPLES / name).read_text())}


def check_target(scaler: dict[str, Any], lower: int, upper: int, deployment: dict) -> None:
    """The scaler targets the Deployment of its file, within its bounds, which the
    operator would clamp to anyway, and Hearth's own autoscaler is off there."""
    ref = scaler["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"]) == ("hearth.dev/v1alpha1", "Deployment")
    assert ref["name"] == deployment["metadata"]["name"]
    assert scaler["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    spec = deployment["spec"]
    assert spec["minReplicaCount"] <= lower <= upper <= spec["maxReplicaCount"]
    assert deployment["metadata"]["annotations"][ANNOTATION_AUTOSCALER] == AUTOSCALER_DISABLED


@pytest.mark.parametrize("name", ["hpa.yaml", "keda.yaml"])
def test_the_hearth_deployments_are_valid(name):
    deployment = documents(name)["Deployment"]
    result = default_validator().validate(deployment)
    assert result.ok, result.describe()


def test_the_hpa_is_a_valid_autoscaling_v2_object_for_the_deployment():
    found = documents("hpa.yaml")
    hpa = found["HorizontalPodAutoscaler"]
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    check_target(hpa, hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"], found["Deployment"])
    # Replicas must not read 0 through the scale subresource, or the HPA does nothing.
    assert found["Deployment"]["spec"]["replicaCount"] >= 1


def test_the_hpa_schema_check_can_fail():
    hpa = documents("hpa.yaml")["HorizontalPodAutoscaler"]
    hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] = {"not": "a quantity"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)


def test_the_scaled_object_has_only_keda_fields_and_a_valid_hpa_behaviour():
    found = documents("keda.yaml")
    scaled = found["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC
    assert set(spec["scaleTargetRef"]) <= SCALE_TARGET_REF
    assert set(spec["advanced"]) <= ADVANCED
    assert set(spec["advanced"]["horizontalPodAutoscalerConfig"]) <= HPA_CONFIG
    for key in ("pollingInterval", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec[key], int) and spec[key] >= 0, key
    for trigger in spec["triggers"]:
        assert set(trigger) <= TRIGGER
        assert trigger["type"] == "prometheus"
        assert set(trigger["metadata"]) <= PROMETHEUS_METADATA
        assert {"serverAddress", "query", "threshold"} <= set(trigger["metadata"])
        # KEDA's trigger metadata is a map of strings.
        assert all(isinstance(v, str) for v in trigger["metadata"].values())
    check_target(scaled, spec["minReplicaCount"], spec["maxReplicaCount"], found["Deployment"])
    # The behaviour KEDA hands to the HPA it creates, checked as part of an HPA.
    as_hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-check", "namespace": "acme"},
        "spec": {
            "scaleTargetRef": {
                k: spec["scaleTargetRef"][k] for k in ("apiVersion", "kind", "name")
            },
            "minReplicas": spec["minReplicaCount"],
            "maxReplicas": spec["maxReplicaCount"],
            "behavior": spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    kubernetes_validate.validate(as_hpa, KUBERNETES_VERSION, strict=True)


ACCOUNT = {
    "apiVersion": "hearth.dev/v1alpha1",
    "kind": "Account",
    "metadata": {"name": "acme"},
    "spec": {},
}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_scale_subresource_they_drive(tmp_path):
    settings = Settings(
        server_command=(sys.executable, str(STUB)),
        server_env={"STUB_RECORD_DIR": str(tmp_path)},
        resync_seconds=1.0,
        autoscaler_interval=0.2,
    )
    with emulated_cluster(settings, tmp_path) as cluster, cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        for path in ("quickstart/10-base-model.yaml",):
            cluster.apply((ROOT / "examples" / path).read_text())
        cluster.apply(documents("hpa.yaml")["Deployment"])
        scale_path = "/apis/hearth.dev/v1alpha1/namespaces/acme/deployments/smollm2-hpa/scale"

        def scale() -> dict[str, Any]:
            result: dict[str, Any] = cluster.kube._call("GET", scale_path)
            return result

        # What an HPA reads: replicas and the selector of the pods it averages over.
        seen = eventually(lambda: scale() if scale()["status"].get("selector") else None)
        assert seen["apiVersion"] == "autoscaling/v1" and seen["spec"]["replicas"] == 1
        selector = dict(part.split("=") for part in seen["status"]["selector"].split(","))
        pods = eventually(lambda: cluster.kube.list("Pod", "acme", labels=selector))
        assert [p["metadata"]["labels"]["hearth.dev/deployment"] for p in pods] == ["smollm2-hpa"]

        # What an HPA writes: the operator runs that many replicas ...
        cluster.kube.patch_scale("Deployment", "smollm2-hpa", "acme", 3)
        eventually(lambda: len(cluster.kube.list("Pod", "acme", labels=selector)) == 3)
        # ... and Hearth's autoscaler says it is off and leaves the count alone.
        deployment = cluster.wait(
            "Deployment",
            "smollm2-hpa",
            lambda d: any(
                c["type"] == "Autoscaling" and c["reason"] == "Disabled"
                for c in d["status"].get("conditions", [])
            ),
        )
        assert deployment["spec"]["replicaCount"] == 3
