"""DeployedModel planning: cross-object rules, default, which replicas need a load."""

from datetime import UTC, datetime

import pytest

from hearth_operator.planning.deployed_model import (
    DeployedModelInputs,
    annotation_value,
    check,
    deployed_model_status,
    finalizers_after,
    is_default,
    label_patch,
    load_actions,
    unload_targets,
)
from tests.operator.factories import addon_model, base_model, pod, stored, with_status

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def dm(name="lora-d1", model="lora", deployment="d1", created="2026-11-25T10:00:00Z", **spec):
    return stored(
        "DeployedModel", name, {"model": model, "deployment": deployment, **spec}, created=created
    )


def deployment(**spec):
    return stored(
        "Deployment",
        "d1",
        {"baseModel": "smollm2", "acceleratorType": "CPU", "enableAddons": True, **spec},
    )


def inputs(obj, model="addon", dep="default", pods=(), **extra):
    return DeployedModelInputs(
        deployed_model=obj,
        model=addon_model() if model == "addon" else model,
        deployment=deployment() if dep == "default" else dep,
        pods=list(pods),
        **extra,
    )


def test_valid_addon():
    verdict = check(inputs(dm()))
    assert verdict.ok and verdict.is_addon


@pytest.mark.parametrize(
    ("case", "build", "reason", "words"),
    [
        (
            "model missing",
            lambda: inputs(dm(), model=None),
            "ModelNotFound",
            "model accounts/acme/models/lora does not exist",
        ),
        (
            "deployment missing",
            lambda: inputs(dm(), dep=None),
            "DeploymentNotFound",
            "deployment accounts/acme/deployments/d1 does not exist",
        ),
        (
            "model not ready",
            lambda: inputs(dm(), model=addon_model(ready=False)),
            "ModelNotReady",
            "not validated yet",
        ),
        (
            "other base",
            lambda: inputs(dm(), model=addon_model(base="llama")),
            "BaseModelMismatch",
            "is a LoRA of accounts/acme/models/llama but deployment",
        ),
        (
            "addons disabled",
            lambda: inputs(dm(), dep=deployment(enableAddons=False)),
            "AddonsDisabled",
            "does not have enableAddons: true",
        ),
        (
            "serverless dm",
            lambda: inputs(dm(serverless=True)),
            "AddonNotServerless",
            "never deployed serverless",
        ),
        (
            "serverless deployment",
            lambda: inputs(dm(), dep=deployment(serverless=True)),
            "AddonNotServerless",
            "never deployed serverless",
        ),
        (
            "rank too high",
            lambda: inputs(dm(), model=addon_model(r=32), dep=deployment(maxPeftRank=16)),
            "RankTooHigh",
            "rank 32; deployment accounts/acme/deployments/d1 accepts at most",
        ),
        (
            "kind hint wrong",
            lambda: inputs(dm(modelKind="HF_BASE_MODEL")),
            "ModelKindMismatch",
            "spec.modelKind says HF_BASE_MODEL",
        ),
        (
            "base on wrong deployment",
            lambda: inputs(dm(model="other-base"), model=base_model("other-base")),
            "NotTheDeploymentsBaseModel",
            "serves accounts/acme/models/smollm2, not",
        ),
        (
            "private model elsewhere",
            lambda: inputs(
                dm(model="accounts/other/models/lora"),
                model=stored("Model", "lora", addon_model()["spec"], namespace="other"),
            ),
            "ModelNotAccessible",
            "is in another account and is not public",
        ),
        (
            "deployment elsewhere",
            lambda: inputs(dm(deployment="accounts/other/deployments/d1")),
            "DeploymentInOtherAccount",
            "is not in account acme",
        ),
    ],
)
def test_cross_object_rules(case, build, reason, words):
    verdict = check(build())
    assert not verdict.ok, case
    assert verdict.reason == reason
    assert words in verdict.message


def test_capacity_counts_addons_in_creation_order():
    dep = deployment(numPeftDeviceCached=1, numPeftHostCached=1)
    first = dm("first", created="2026-11-25T10:00:00Z")
    second = dm("second", created="2026-11-25T11:00:00Z")
    addons = frozenset({"acme/first", "acme/second"})
    assert check(inputs(first, dep=dep, same_deployment=[first, second], addon_models=addons)).ok
    refused = check(inputs(second, dep=dep, same_deployment=[first, second], addon_models=addons))
    assert refused.reason == "CapacityExceeded"
    assert "numPeftHostCached=1" in refused.message


def test_base_model_deployed_model_needs_no_load():
    obj = dm("base", model="smollm2")
    verdict = check(inputs(obj, model=base_model()))
    assert verdict.ok and not verdict.is_addon
    status = deployed_model_status(
        inputs(obj, model=base_model(), pods=[pod("p0")]), verdict, failures={}, now=NOW
    )
    assert status["state"] == "DEPLOYED"
    assert status["replicas"] == [{"pod": "p0", "state": "LOADED"}]


def test_load_actions_skip_recorded_and_not_ready_pods():
    obj = dm()
    model = addon_model()
    done = pod("p-done", ip="10.0.0.2")
    done["metadata"]["annotations"]["adapter.hearth.dev/lora-d1"] = annotation_value(
        "accounts/acme/models/lora", "pvc://artifacts/adapters/lora", done
    )
    pods = [pod("p-new", ip="10.0.0.1"), done, pod("p-starting", ready=False)]
    actions = load_actions(inputs(obj, model=model, pods=pods), port=8000)
    assert [(a.pod, a.pod_ip, a.lora_name, a.lora_path) for a in actions] == [
        ("p-new", "10.0.0.1", "accounts/acme/models/lora", "pvc://artifacts/adapters/lora")
    ]


def test_restarted_server_gets_the_adapter_again():
    obj = dm()
    restarted = pod("p0", restarts=1)
    # Recorded before the restart (restart count 0): the server has forgotten it.
    restarted["metadata"]["annotations"]["adapter.hearth.dev/lora-d1"] = annotation_value(
        "accounts/acme/models/lora", "pvc://artifacts/adapters/lora", pod("p0")
    )
    assert [a.pod for a in load_actions(inputs(obj, pods=[restarted]), port=8000)] == ["p0"]


def test_status_states():
    obj = dm()
    verdict = check(inputs(obj))
    waiting = deployed_model_status(inputs(obj), verdict, failures={}, now=NOW)
    assert waiting["state"] == "DEPLOYING" and "no ready replica" in waiting["message"]
    pods = [pod("p0"), pod("p1", ip="10.0.0.2")]
    loading = deployed_model_status(inputs(obj, pods=pods), verdict, failures={}, now=NOW)
    assert loading["state"] == "DEPLOYING"
    assert [r["state"] for r in loading["replicas"]] == ["LOADING", "LOADING"]
    failed = deployed_model_status(
        inputs(obj, pods=pods), verdict, failures={"p1": "HTTP 400: rank 64 > 16"}, now=NOW
    )
    assert failed["state"] == "FAILED"
    assert "loading into p1 failed: HTTP 400: rank 64 > 16" in failed["message"]
    for p in pods:
        p["metadata"]["annotations"]["adapter.hearth.dev/lora-d1"] = annotation_value(
            "accounts/acme/models/lora", "pvc://artifacts/adapters/lora", p
        )
    deployed = deployed_model_status(inputs(obj, pods=pods), verdict, failures={}, now=NOW)
    assert deployed["state"] == "DEPLOYED" and deployed["loadedReplicaCount"] == 2
    invalid = deployed_model_status(
        inputs(obj, dep=None), check(inputs(obj, dep=None)), failures={}, now=NOW
    )
    assert invalid["state"] == "FAILED"
    assert invalid["conditions"][0]["reason"] == "DeploymentNotFound"


def test_default_first_deployed_model_wins_unless_one_is_explicit():
    a = dm("a", created="2026-11-25T10:00:00Z")
    b = dm("b", created="2026-11-25T11:00:00Z")
    assert is_default(inputs(a, same_model=[a, b])) == (True, None)
    assert is_default(inputs(b, same_model=[a, b])) == (False, None)
    b_explicit = dm("b", created="2026-11-25T11:00:00Z", default=True)
    assert is_default(inputs(a, same_model=[a, b_explicit])) == (False, None)
    assert is_default(inputs(b_explicit, same_model=[a, b_explicit])) == (True, None)
    a_explicit = dm("a", created="2026-11-25T10:00:00Z", default=True)
    default, conflict = is_default(inputs(b_explicit, same_model=[a_explicit, b_explicit]))
    assert not default and conflict is not None and "already the default" in conflict
    status = deployed_model_status(
        inputs(b_explicit, same_model=[a_explicit, b_explicit]),
        check(inputs(b_explicit)),
        failures={},
        now=NOW,
    )
    assert status["state"] == "FAILED" and status["conditions"][0]["reason"] == "DefaultConflict"


def test_unload_targets_are_pods_recorded_as_holding_it():
    holding = pod("p0", ip="10.0.0.9", annotations={"adapter.hearth.dev/lora-d1": "x.0"})
    gone = pod("p1", annotations={"adapter.hearth.dev/lora-d1": "x.0"})
    gone["metadata"]["deletionTimestamp"] = "2026-11-25T12:00:00Z"
    assert unload_targets(dm(), [holding, gone, pod("p2")]) == [("p0", "10.0.0.9")]


def test_condition_transition_time_moves_only_on_flips():
    obj = dm()
    verdict = check(inputs(obj))
    first = deployed_model_status(inputs(obj), verdict, failures={}, now=NOW)
    later = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    again = deployed_model_status(
        inputs(with_status(obj, **first)), verdict, failures={}, now=later
    )
    assert (
        again["conditions"][0]["lastTransitionTime"] == first["conditions"][0]["lastTransitionTime"]
    )


def test_labels_name_the_model_and_deployment_and_are_patched_only_when_missing():
    obj = dm()
    wanted = label_patch(obj, addon_model())
    assert wanted == {
        "hearth.dev/model-account": "acme",
        "hearth.dev/model": "lora",
        "hearth.dev/deployment": "d1",
        "hearth.dev/addon": "true",
    }
    obj["metadata"]["labels"] = {**wanted, "team": "x"}
    assert label_patch(obj, addon_model()) is None
    # Whether it is an addon is known once the model exists; a base model says "false".
    as_base = label_patch(obj, base_model(name="lora"))
    assert as_base is not None and as_base["hearth.dev/addon"] == "false"
    unknown = label_patch(dm(model="accounts/other/models/m"), None)
    assert unknown is not None and "hearth.dev/addon" not in unknown
    assert unknown["hearth.dev/model-account"] == "other"


def test_finalizer_only_while_an_adapter_may_be_in_a_server():
    obj = dm()
    obj["metadata"]["finalizers"] = ["example.com/keep"]
    fresh = [pod("p0")]
    actions = load_actions(inputs(obj, pods=fresh), port=8000)
    # Added before the first load (a deletion racing the load must still unload), keeping
    # other controllers' finalizers.
    assert finalizers_after(obj, fresh, actions) == [
        "example.com/keep",
        "hearth.dev/unload-adapters",
    ]
    obj["metadata"]["finalizers"] = ["example.com/keep", "hearth.dev/unload-adapters"]
    holding = [pod("p0", annotations={"adapter.hearth.dev/lora-d1": "x.0"})]
    assert finalizers_after(obj, holding, []) is None  # loaded: kept, nothing to write
    # No live pod holds it any more (the deployment went, pods were replaced): released.
    holding[0]["metadata"]["deletionTimestamp"] = "2026-11-25T12:00:00Z"
    assert finalizers_after(obj, holding, []) == ["example.com/keep"]
    # A base model (no adapter) or a refused addon never gets one.
    base = dm("base-d1", model="smollm2")
    assert finalizers_after(base, [pod("p0")], []) is None
    assert "finalizers" not in base["metadata"]
