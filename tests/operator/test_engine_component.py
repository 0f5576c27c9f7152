"""Serving-engine refusals in the real operator (kopf) against the emulated API server.

A spec its engine cannot serve (hearth-server on two GPUs, a precision it has no path for)
gets a Ready=False condition naming the problem and the way out, and nothing is created
for it; fixing the spec starts the replicas. VLLM on CPU never reaches the operator.
"""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from hearth_operator.constants import api_key_secret_name
from hearth_operator.context import Context
from hearth_operator.planning.deployment import service_name
from tests.harness.waiting import eventually
from tests.operator.conftest import Cluster

pytestmark = pytest.mark.timeout(180)

ACCOUNT = """
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec:
  quota: {gpus: 8}
"""
BASE = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: smollm2, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: builtin://smollm2-135m-instruct}
"""


def deployment(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"baseModel": "smollm2", "minReplicaCount": 1, **spec},
    }


def ready_condition(cluster: Cluster, name: str) -> dict[str, str]:
    found = cluster.get("Deployment", name) or {}
    return next(
        (c for c in (found.get("status") or {}).get("conditions", []) if c["type"] == "Ready"),
        {},
    )


def created_for(cluster: Cluster, name: str) -> list[str]:
    """What exists that the operator makes for a Deployment."""
    made = [p["metadata"]["name"] for p in cluster.pods(name)]
    if cluster.get("Service", service_name(name)) is not None:
        made.append("Service")
    if cluster.get("Secret", api_key_secret_name(name)) is not None:
        made.append("Secret")
    made += [
        d["metadata"]["name"]
        for d in cluster.kube.list("DeployedModel", "acme")
        if d["spec"]["deployment"] == name
    ]
    return made


def test_specs_the_engine_cannot_serve_are_refused_with_nothing_created(cluster: Cluster):
    with cluster.operator() as ctx:
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.wait_state("Model", "smollm2", "READY")
        cluster.apply(
            deployment("two-gpus", acceleratorType="NVIDIA_H100_80GB", acceleratorCount=2)
        )
        cluster.apply(deployment("fp8", acceleratorType="CPU", precision="FP8"))

        two = cluster.wait_state("Deployment", "two-gpus", "FAILED")
        ready = ready_condition(cluster, "two-gpus")
        assert (ready["status"], ready["reason"]) == ("False", "UnsupportedAcceleratorCount")
        assert "servingEngine: VLLM" in ready["message"]
        assert two["status"]["message"] == ready["message"]
        fp8 = cluster.wait_state("Deployment", "fp8", "FAILED")
        ready = ready_condition(cluster, "fp8")
        assert (ready["status"], ready["reason"]) == ("False", "UnsupportedPrecision")
        assert "precision FP8 is not served by servingEngine HEARTH" in ready["message"]
        assert fp8["status"]["observedGeneration"] == fp8["metadata"]["generation"]
        # The refusal is an Event too, for kubectl describe.
        reasons = eventually(
            lambda: (
                {
                    e["reason"]
                    for e in cluster.kube.list("Event", "acme")
                    if e["reason"].startswith("Unsupported")
                }
                or None
            ),
            timeout=10,
        )
        assert reasons == {"UnsupportedAcceleratorCount", "UnsupportedPrecision"}
        # Resyncs (every second here) reconcile both again: still nothing exists for either.
        wait_reconciles(ctx, 4)
        assert created_for(cluster, "two-gpus") == []
        assert created_for(cluster, "fp8") == []

        # Fixing the spec lifts the refusal: the replica and its companions are made.
        cluster.kube.merge_patch(
            "Deployment", "two-gpus", "acme", {"spec": {"acceleratorCount": 1}}
        )
        eventually(lambda: cluster.pods("two-gpus"), timeout=30)
        cluster.wait(
            "Deployment",
            "two-gpus",
            lambda d: ready_condition(cluster, "two-gpus").get("reason") == "ReplicasStarting",
        )
        assert cluster.get("Secret", api_key_secret_name("two-gpus")) is not None
        assert cluster.get("Service", service_name("two-gpus")) is not None


def wait_reconciles(ctx: Context, more: int) -> None:
    """Waits until the operator has finished ``more`` further Deployment reconciles."""

    def done() -> float:
        value = ctx.metrics.registry.get_sample_value(
            "hearth_operator_reconciles_total", {"kind": "Deployment", "result": "ok"}
        )
        return value or 0.0

    start = done()
    eventually(lambda: done() >= start + more, timeout=30)


def test_vllm_on_cpu_is_refused_by_the_api(cluster: Cluster):
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    with pytest.raises(ApiException) as refused:
        cluster.apply(deployment("cpu-vllm", acceleratorType="CPU", servingEngine="VLLM"))
    assert refused.value.status == 422
    assert "servingEngine VLLM needs a GPU acceleratorType" in str(refused.value.body)
