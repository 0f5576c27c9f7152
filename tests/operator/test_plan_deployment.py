"""The Deployment planner: pods, rollout, quota, status, as tables and a simulation."""

from datetime import UTC, datetime

import pytest

from hearth.api import DeploymentSpec
from hearth_operator.planning.common import resolve_ref
from hearth_operator.planning.deployment import (
    DeploymentInputs,
    api_key_from_secret,
    desired_replicas,
    plan_deployment,
    render_pod_template,
    template_hash,
)
from hearth_operator.settings import Settings
from tests.operator.factories import base_model, pod, stored, with_status

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SETTINGS = Settings()
#: A base model vLLM can load (builtin:// is bundled with hearth-server only).
HF_BASE = base_model(source={"uri": "hf://HuggingFaceTB/SmolLM2-135M-Instruct"})


def deployment(name="d1", **spec):
    return stored("Deployment", name, {"baseModel": "smollm2", "acceleratorType": "CPU", **spec})


def inputs(dep, pods=(), base="default", **extra):
    extra.setdefault("fresh_api_key", "fresh-token")
    return DeploymentInputs(
        deployment=dep,
        base_model=base_model() if base == "default" else base,
        pods=list(pods),
        settings=SETTINGS,
        now=NOW,
        **extra,
    )


def current_hash(dep):
    spec = DeploymentSpec.model_validate(dep["spec"])
    template = render_pod_template(
        dep, spec, base_model(), resolve_ref(spec.base_model, "models", "acme"), SETTINGS
    )
    return template_hash(template)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, 0),
        ({"minReplicaCount": 2}, 2),
        ({"minReplicaCount": 1, "replicaCount": 3}, 1),  # max defaults to max(min, 1) = 1
        ({"minReplicaCount": 1, "maxReplicaCount": 4, "replicaCount": 3}, 3),
        ({"minReplicaCount": 1, "maxReplicaCount": 4, "replicaCount": 9}, 4),
        ({"minReplicaCount": 2, "maxReplicaCount": 4, "replicaCount": 0}, 2),
        ({"minReplicaCount": 0, "maxReplicaCount": 0, "replicaCount": 2}, 0),
    ],
)
def test_desired_replicas_clamps_scale_to_min_and_max(spec, expected):
    assert desired_replicas(DeploymentSpec.model_validate({"baseModel": "m", **spec})) == expected


def test_first_reconcile_creates_pods_and_service():
    dep = deployment(
        minReplicaCount=2,
        enableAddons=True,
        numPeftDeviceCached=4,
        numPeftHostCached=16,
        maxPeftRank=16,
    )
    plan = plan_deployment(inputs(dep))
    spec_hash = current_hash(dep)
    assert [p["metadata"]["name"] for p in plan.create] == [
        f"d1-{spec_hash}-0",
        f"d1-{spec_hash}-1",
    ]
    assert plan.delete == []
    container = plan.create[0]["spec"]["containers"][0]
    assert container["command"] == ["hearth-server"]
    assert container["args"] == [
        "serve",
        "builtin://smollm2-135m-instruct",
        "--served-model-name",
        "accounts/acme/models/smollm2",
        "--port",
        "8000",
        "--max-loras",
        "4",
        "--max-cpu-loras",
        "16",
        "--max-lora-rank",
        "16",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    owner = plan.create[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Deployment", "d1", True)
    assert plan.service is not None
    assert plan.service["spec"]["selector"] == {
        "app.kubernetes.io/name": "hearth-server",
        "hearth.dev/deployment": "d1",
    }
    assert plan.status["state"] == "CREATING"
    assert plan.status["desiredReplicaCount"] == 2
    assert plan.status["endpoint"] == "http://d1-server.acme.svc"


def test_gpu_replicas_request_their_vendor_resource_and_nodes():
    # Two GPUs per replica: vLLM's tensor parallelism (hearth-server refuses more than one).
    dep = deployment(
        acceleratorType="NVIDIA_H100_80GB",
        acceleratorCount=2,
        minReplicaCount=1,
        servingEngine="VLLM",
    )
    pod_spec = plan_deployment(inputs(dep, base=HF_BASE)).create[0]["spec"]
    resources = pod_spec["containers"][0]["resources"]
    assert resources == {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod_spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    amd = deployment(acceleratorType="AMD_MI300X_192GB", acceleratorCount=1, minReplicaCount=1)
    amd_spec = plan_deployment(inputs(amd)).create[0]["spec"]
    assert amd_spec["containers"][0]["resources"]["requests"] == {"amd.com/gpu": "1"}
    assert amd_spec["nodeSelector"] == {"amd.com/gpu.product-name": "AMD_Instinct_MI300X"}


def test_all_ready_is_steady():
    dep = deployment(minReplicaCount=2)
    h = current_hash(dep)
    pods = [pod(f"d1-{h}-0", spec_hash=h), pod(f"d1-{h}-1", spec_hash=h)]
    plan = plan_deployment(inputs(dep, pods))
    assert (plan.create, plan.delete) == ([], [])
    assert plan.status["state"] == "READY"
    assert plan.status["replicaStats"]["readyReplicaCount"] == 2
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "True",
        "ReplicasReady",
        1,
    )


def test_scale_to_zero_is_ready_with_no_pods():
    plan = plan_deployment(inputs(deployment()))
    assert (plan.create, plan.status["state"], plan.status["replicaCount"]) == ([], "READY", 0)


def test_scale_down_removes_not_ready_then_newest():
    dep = deployment(minReplicaCount=1)
    h = current_hash(dep)
    pods = [
        pod(f"d1-{h}-0", spec_hash=h),
        pod(f"d1-{h}-1", spec_hash=h),
        pod(f"d1-{h}-2", spec_hash=h, ready=False),
    ]
    plan = plan_deployment(inputs(dep, pods))
    assert sorted(plan.delete) == [f"d1-{h}-1", f"d1-{h}-2"]
    assert plan.create == []


def test_failed_pod_is_replaced_at_a_new_index():
    dep = deployment(minReplicaCount=1)
    h = current_hash(dep)
    plan = plan_deployment(
        inputs(dep, [pod(f"d1-{h}-0", spec_hash=h, phase="Failed", ready=False)])
    )
    assert plan.delete == [f"d1-{h}-0"]
    assert [p["metadata"]["name"] for p in plan.create] == [f"d1-{h}-1"]


def test_crashing_server_is_reported():
    dep = deployment(minReplicaCount=1)
    h = current_hash(dep)
    crashing = pod(
        f"d1-{h}-0",
        spec_hash=h,
        ready=False,
        restarts=4,
        terminated={"exitCode": 1, "reason": "Error", "message": "no such model"},
    )
    plan = plan_deployment(inputs(dep, [crashing]))
    assert plan.status["state"] == "FAILED"
    assert "Error (exit code 1): no such model" in plan.status["message"]


def apply(pods, plan, spec_hash_ready_next=True):
    """The world after a plan: deletions happen, creations exist (not ready yet)."""
    survivors = [p for p in pods if p["metadata"]["name"] not in plan.delete]
    for created in plan.create:
        labels = created["metadata"]["labels"]
        survivors.append(
            pod(created["metadata"]["name"], spec_hash=labels["hearth.dev/spec-hash"], ready=False)
        )
    return survivors


def make_ready(pods):
    return [
        pod(p["metadata"]["name"], spec_hash=p["metadata"]["labels"]["hearth.dev/spec-hash"])
        for p in pods
    ]


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_rollout_surges_one_and_never_drops_below_desired(replicas):
    old_dep = deployment(minReplicaCount=replicas)
    old_hash = current_hash(old_dep)
    pods = [pod(f"d1-{old_hash}-{i}", spec_hash=old_hash) for i in range(replicas)]
    new_dep = deployment(minReplicaCount=replicas, maxPeftRank=32, enableAddons=True)
    new_hash = current_hash(new_dep)
    assert new_hash != old_hash
    states = []
    for _step in range(4 * replicas + 4):
        plan = plan_deployment(inputs(new_dep, pods))
        states.append(plan.status["state"])
        pods = apply(pods, plan)
        live = list(pods)
        assert len(live) <= replicas + 1, "surge is one pod"
        ready = sum(1 for p in live if p["status"]["conditions"][1]["status"] == "True")
        if plan.delete:
            assert ready >= replicas, "a ready replica was retired before its successor was ready"
        pods = make_ready(pods)
        if plan.status["state"] == "READY" and not plan.create and not plan.delete:
            break
    assert states[0] == "UPDATING"
    assert states[-1] == "READY"
    assert {p["metadata"]["labels"]["hearth.dev/spec-hash"] for p in pods} == {new_hash}
    assert len(pods) == replicas


def test_rollout_keeps_serving_while_new_pod_starts():
    dep = deployment(minReplicaCount=1, maxPeftRank=32, enableAddons=True)
    new = current_hash(dep)
    pods = [pod("d1-old-0", spec_hash="old"), pod(f"d1-{new}-0", spec_hash=new, ready=False)]
    plan = plan_deployment(inputs(dep, pods))
    assert (plan.create, plan.delete) == ([], [])  # the old pod stays until the new is ready
    assert plan.status["state"] == "UPDATING"
    plan = plan_deployment(inputs(dep, make_ready(pods)))
    assert plan.delete == ["d1-old-0"]


@pytest.mark.parametrize(
    ("base", "state", "reason_words"),
    [
        (None, "FAILED", "does not exist"),
        (base_model(ready=False), "CREATING", "waiting for base model"),
        (with_status(base_model(), state="FAILED", message="bad"), "FAILED", "is FAILED: bad"),
    ],
)
def test_unusable_base_model_creates_no_pods(base, state, reason_words):
    plan = plan_deployment(inputs(deployment(minReplicaCount=1), base=base))
    assert plan.create == [] and plan.service is None
    assert plan.status["state"] == state
    assert reason_words in plan.status["message"]


def test_addon_as_base_model_is_refused():
    addon = stored(
        "Model",
        "smollm2",
        {
            "kind": "HF_PEFT_ADDON",
            "source": {"uri": "hf://a/b"},
            "peftDetails": {"baseModel": "x", "r": 8},
        },
    )
    plan = plan_deployment(
        inputs(deployment(minReplicaCount=1), base=with_status(addon, state="READY"))
    )
    assert "is a LoRA addon" in plan.status["message"]


def test_private_model_of_another_account_is_refused():
    other = base_model(namespace="other")
    dep = deployment(baseModel="accounts/other/models/smollm2", minReplicaCount=1)
    assert "not public" in plan_deployment(inputs(dep, base=other)).status["message"]
    public = base_model(namespace="other", public=True)
    assert plan_deployment(inputs(dep, base=public)).create
    platform = base_model(namespace="hearth")
    dep = deployment(baseModel="accounts/hearth/models/smollm2", minReplicaCount=1)
    assert plan_deployment(inputs(dep, base=platform)).create


def account(**quota):
    return stored("Account", "acme", {"quota": quota}, namespace=None)


def test_gpu_quota_exceeded_creates_nothing_and_says_the_numbers():
    dep = deployment(
        acceleratorType="NVIDIA_H100_80GB",
        acceleratorCount=2,
        minReplicaCount=2,
        servingEngine="VLLM",
    )
    others = [pod("other-0", deployment="d0", gpus=2, accelerator="NVIDIA_H100_80GB")]
    plan = plan_deployment(inputs(dep, base=HF_BASE, account=account(gpus=4), other_pods=others))
    assert plan.create == []
    assert plan.status["state"] == "FAILED"
    quota = next(c for c in plan.status["conditions"] if c["type"] == "QuotaExceeded")
    assert quota["status"] == "True"
    assert quota["message"] == "needs 4 GPUs (2 replicas x 2), 2 of 4 left"
    assert ("Warning", "QuotaExceeded", quota["message"]) in plan.events
    fits = plan_deployment(inputs(dep, base=HF_BASE, account=account(gpus=6), other_pods=others))
    assert len(fits.create) == 2


def test_per_type_gpu_quota():
    dep = deployment(acceleratorType="NVIDIA_H100_80GB", acceleratorCount=1, minReplicaCount=2)
    quota = account(gpusPerAcceleratorType={"NVIDIA_H100_80GB": 1, "NVIDIA_L4_24GB": 8})
    plan = plan_deployment(inputs(dep, account=quota))
    assert "needs 2 NVIDIA_H100_80GB" in plan.status["message"]
    assert plan.create == []


def test_deployment_count_quota_counts_in_creation_order():
    first = deployment("a", minReplicaCount=1)
    second = stored(
        "Deployment",
        "b",
        {"baseModel": "smollm2", "acceleratorType": "CPU", "minReplicaCount": 1},
        created="2026-11-25T11:00:00Z",
    )
    quota = account(deployments=1)
    assert plan_deployment(inputs(first, account=quota, siblings=[second])).create
    refused = plan_deployment(inputs(second, account=quota, siblings=[first]))
    assert refused.create == []
    assert "may have 1 deployments and this is number 2" in refused.status["message"]


def test_cpu_deployments_do_not_count_against_gpu_quota():
    plan = plan_deployment(inputs(deployment(minReplicaCount=3), account=account(gpus=0)))
    assert len(plan.create) == 3


def test_deleting_deployment_reports_deleting():
    dep = deployment(minReplicaCount=1)
    dep["metadata"]["deletionTimestamp"] = "2026-11-25T12:00:00Z"
    plan = plan_deployment(inputs(dep))
    assert plan.status["state"] == "DELETING" and plan.create == []
    assert plan.api_key_secret is None and plan.base_deployed_model is None


def probe_window(probe):
    """Seconds of consecutive failures before the kubelet acts on a probe."""
    return probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)


def test_liveness_probe_replaces_a_dead_server_but_never_a_loading_one():
    container = plan_deployment(inputs(deployment(minReplicaCount=1))).create[0]["spec"][
        "containers"
    ][0]
    health = {"path": "/health", "port": 8000}
    liveness, startup = container["livenessProbe"], container["startupProbe"]
    # The server answers 503 on /health for good once its engine died: liveness sees that.
    assert liveness["httpGet"] == health
    # The kubelet runs no liveness check before the startup probe passed, and the startup
    # probe allows a long load (30 minutes), so a loading model is never killed.
    assert startup["httpGet"] == health
    assert probe_window(startup) >= 30 * 60
    # Once started, a short stall (a long prompt tokenised, a GC pause) is not a death.
    assert probe_window(liveness) >= 30
    assert liveness["timeoutSeconds"] >= 5
    # Readiness reacts faster than liveness: traffic stops before the pod is replaced.
    assert probe_window(container["readinessProbe"]) < probe_window(liveness)


def test_api_key_secret_is_made_once_and_reaches_pods_by_reference():
    dep = deployment(minReplicaCount=1)
    plan = plan_deployment(inputs(dep, fresh_api_key="s3cret-token"))
    secret = plan.api_key_secret
    assert secret is not None
    assert secret["metadata"]["name"] == "d1-api-key"
    assert secret["metadata"]["namespace"] == "acme"
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Deployment", "d1")
    assert api_key_from_secret(secret) == "s3cret-token"
    # Pods name the Secret; the token itself never appears in a pod spec.
    pod_spec = plan.create[0]["spec"]
    env = {e["name"]: e for e in pod_spec["containers"][0]["env"]}
    assert env["HEARTH_SERVER_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "d1-api-key", "key": "api-key"}
    }
    assert "s3cret-token" not in str(plan.create)
    # A resync that finds the Secret makes none (the token is never rotated), and the pod
    # spec (hence the spec hash) does not depend on the token.
    again = plan_deployment(inputs(dep, api_key_secret=secret, fresh_api_key="other"))
    assert again.api_key_secret is None
    assert again.create[0]["metadata"]["name"] == plan.create[0]["metadata"]["name"]
    # Without a Secret and without a fresh token the planner refuses to guess.
    with pytest.raises(ValueError, match="fresh_api_key"):
        plan_deployment(inputs(dep, fresh_api_key=""))


def test_base_model_is_deployed_with_the_deployment():
    plan = plan_deployment(inputs(deployment(minReplicaCount=1)))
    dm = plan.base_deployed_model
    assert dm is not None
    assert dm["spec"] == {"model": "smollm2", "deployment": "d1", "modelKind": "HF_BASE_MODEL"}
    assert dm["metadata"]["name"].startswith("smollm2-") and len(dm["metadata"]["name"]) == 16
    assert dm["metadata"]["ownerReferences"][0]["name"] == "d1"
    # Stable per deployment: a second reconcile names the same object (a 409, not a twin).
    assert plan_deployment(inputs(deployment(minReplicaCount=1))).base_deployed_model == dm
    # Nothing is deployed while the base model cannot be served.
    waiting = plan_deployment(inputs(deployment(minReplicaCount=1), base=base_model(ready=False)))
    assert waiting.base_deployed_model is None
