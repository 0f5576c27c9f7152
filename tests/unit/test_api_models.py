"""The pydantic resource models: wire names, Fireworks defaults, parsing stored objects."""

import pytest
from pydantic import ValidationError

from hearth import api
from hearth.api import (
    AccountSpec,
    Deployment,
    DeploymentSpec,
    FineTuningJobSpec,
    ModelSpec,
)
from hearth.validation import validate


def test_wire_names_are_fireworks_camel_case():
    spec = DeploymentSpec(base_model="smollm2", min_replica_count=1, enable_addons=True)
    wire = spec.to_wire()
    assert wire["baseModel"] == "smollm2"
    assert wire["minReplicaCount"] == 1
    assert wire["enableAddons"] is True
    assert wire["autoscalingPolicy"]["scaleToZeroWindow"] == "1h"
    # And camelCase input is accepted.
    assert DeploymentSpec.model_validate(wire) == spec


def test_fireworks_defaults():
    deployment = DeploymentSpec(base_model="m")
    assert deployment.min_replica_count == 0
    assert deployment.max_replica_count is None  # means max(min, 1)
    policy = deployment.autoscaling_policy
    assert (policy.scale_up_window, policy.scale_down_window, policy.scale_to_zero_window) == (
        "30s",
        "10m",
        "1h",
    )
    assert policy.load_targets == {"default": 0.8}
    assert deployment.accelerator_type == api.AcceleratorType.NVIDIA_A100_80GB
    job = FineTuningJobSpec(dataset="d", base_model="m")
    assert (job.epochs, job.lora_rank, job.max_context_length, job.batch_size) == (
        1,
        8,
        8192,
        32768,
    )
    assert job.early_stop is False
    assert (
        ModelSpec.model_validate(
            {"source": {"uri": "hf://a/b"}, "peftDetails": {"baseModel": "b", "r": 8}}
        ).kind
        == api.ModelKind.HF_PEFT_ADDON
    )


def test_model_defaults_agree_with_crd_defaults():
    """What Python assumes when a field is absent equals what the API server stores."""
    python_side = DeploymentSpec(base_model="m").to_wire()
    stored = validate(
        {
            "apiVersion": "hearth.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"baseModel": "m"},
        }
    ).defaulted["spec"]
    assert python_side == stored


@pytest.mark.parametrize(
    ("model", "data", "words"),
    [
        (DeploymentSpec, {"baseModel": "m", "minReplicaCount": -1}, "greater than or equal"),
        (DeploymentSpec, {"baseModel": "Bad_Name"}, "should match pattern"),
        (DeploymentSpec, {"baseModel": "m", "surprise": 1}, "Extra inputs are not permitted"),
        (FineTuningJobSpec, {"dataset": "d", "baseModel": "m", "loraRank": 65}, "LoRA rank"),
        (AccountSpec, {"email": "not-an-email"}, "should match pattern"),
    ],
)
def test_python_side_enforces_field_rules(model, data, words):
    with pytest.raises(ValidationError, match=words):
        model.model_validate(data)


def test_parse_a_stored_object_with_server_metadata_and_status():
    stored = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {
            "name": "d1",
            "namespace": "acme",
            "generation": 3,
            "uid": "0b5f",
            "resourceVersion": "42",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"baseModel": "smollm2", "acceleratorType": "CPU"},
        "status": {
            "state": "READY",
            "replicaCount": 1,
            "observedGeneration": 3,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "ReplicasReady",
                    "message": "1/1 replicas ready",
                    "lastTransitionTime": "2026-11-25T10:00:00Z",
                    "observedGeneration": 3,
                }
            ],
            "someFutureField": True,
        },
    }
    deployment = Deployment.model_validate(stored)
    assert deployment.metadata.generation == 3
    assert deployment.spec.accelerator_type == api.AcceleratorType.CPU
    assert deployment.status is not None
    assert deployment.status.state == api.DeploymentState.READY
    assert deployment.status.conditions[0].status == api.ConditionStatus.TRUE


def test_every_kind_is_exported_with_its_crd_facts():
    kinds = {cls.model_fields["kind"].default for cls in api.RESOURCE_CLASSES}
    assert kinds == {
        "Account",
        "User",
        "ApiKey",
        "Model",
        "Deployment",
        "DeployedModel",
        "Dataset",
        "FineTuningJob",
    }
    for cls in api.RESOURCE_CLASSES:
        assert cls.kind_info.plural == cls.kind_info.singular + "s"
    assert set(api.__all__) <= set(dir(api))


def test_api_key_model_round_trip_and_immutable_user():
    key = api.ApiKey.model_validate(
        {
            "metadata": {"name": "k1", "namespace": "acme"},
            "spec": {"user": "alice", "expireTime": "2027-01-31T23:59:59Z"},
            "status": {"state": "READY", "prefix": "hk_abcdefghi", "keyHash": "sha256:00"},
        }
    )
    assert key.spec.display_name == "default"
    assert key.spec.expire_time is not None and key.spec.expire_time.year == 2027
    assert key.status is not None and key.status.state == api.ApiKeyState.READY
    wire = key.spec.to_wire()
    assert wire == {"user": "alice", "displayName": "default", "expireTime": "2027-01-31T23:59:59Z"}
    assert api.ApiKey.kind_info.short_names == ("hkey",)


def test_account_quota_has_serverless_requests_per_minute():
    quota = api.AccountQuota.model_validate({"serverlessRequestsPerMinute": 600})
    assert quota.serverless_requests_per_minute == 600
    with pytest.raises(ValueError, match="serverlessRequestsPerMinute"):
        api.AccountQuota.model_validate({"serverlessRequestsPerMinute": -1})
