"""CR <-> Fireworks JSON: what the SDK sends becomes a valid custom resource, and a
custom resource reads back with Fireworks' names, times, state and status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hearth.validation import validate
from hearth_gateway.control import (
    api_keys,
    datasets,
    deployed_models,
    deployments,
    fine_tuning_jobs,
    models,
    users,
)
from hearth_gateway.control.accounts import to_json as account_json
from hearth_gateway.control.common import Directory, updated_spec
from hearth_gateway.control.constants import ANNOTATION_CREATED_BY
from hearth_gateway.control.errors import ApiError

DIRECTORY = Directory({"ann": "ann@acme.example"})


def stored(obj: dict, status: dict | None = None) -> dict:
    """``obj`` as the API server returns it."""
    meta = {**obj["metadata"], "creationTimestamp": "2026-01-02T03:04:05Z", "uid": "u1"}
    return {**obj, "metadata": meta, "status": status or {}}


def assert_valid(obj: dict) -> None:
    result = validate(obj)
    assert result.ok, result.describe()


def test_user_create_from_sdk_body_validates_and_reads_back() -> None:
    obj = users.create("acme", None, {"role": "contributor", "email": "Eve.X@acme.example"}, "ann")
    assert obj["metadata"]["name"] == "eve-x"
    assert obj["metadata"]["annotations"] == {ANNOTATION_CREATED_BY: "ann"}
    assert_valid(obj)
    out = users.to_json(stored(obj, {"state": "READY", "message": "bound"}), DIRECTORY)
    assert out["name"] == "accounts/acme/users/eve-x"
    assert out["role"] == "contributor" and out["state"] == "READY"
    assert out["status"] == {"code": "OK", "message": "bound"}
    assert out["createTime"] == "2026-01-02T03:04:05Z" and out["createdBy"] == "ann@acme.example"
    with pytest.raises(ApiError, match="userId: required"):
        users.create("acme", None, {"role": "user", "serviceAccount": True}, "ann")
    with pytest.raises(ApiError, match=r"user\.colour: not supported"):
        users.create("acme", "x", {"role": "user", "colour": "red"}, "ann")


def test_model_from_sdk_body_with_source_or_hugging_face_url() -> None:
    body = {"kind": "HF_BASE_MODEL", "source": {"uri": "pvc://artifacts/tiny"}, "public": True}
    obj = models.create("acme", "tiny", body, "ann")
    assert_valid(obj)
    hf = models.create(
        "acme",
        "q",
        {"kind": "HF_BASE_MODEL", "huggingFaceUrl": "https://huggingface.co/org/q"},
        "ann",
    )
    assert hf["spec"]["source"] == {"uri": "hf://org/q"}
    out = models.to_json(stored(hf, {"state": "READY", "supportsServerless": False}), DIRECTORY)
    assert (
        out["huggingFaceUrl"] == "https://huggingface.co/org/q" and out["kind"] == "HF_BASE_MODEL"
    )
    with pytest.raises(ApiError, match=r"model\.source\.uri: required"):
        models.create("acme", "x", {"kind": "HF_BASE_MODEL"}, "ann")
    bad = models.create(
        "acme", "x", {"kind": "HF_PEFT_ADDON", "source": {"uri": "pvc://a/b"}}, "ann"
    )
    assert any("peftDetails" in str(e) for e in validate(bad).errors)


def test_deployment_round_trip_and_scale() -> None:
    body = {
        "baseModel": "accounts/acme/models/tiny",
        "minReplicaCount": 1,
        "acceleratorType": "CPU",
    }
    obj = deployments.create("acme", "smol", body, "ann")
    assert_valid(obj)
    status = {"state": "READY", "replicaCount": 1, "desiredReplicaCount": 1}
    out = deployments.to_json(stored(obj, status), DIRECTORY)
    assert out["name"] == "accounts/acme/deployments/smol"
    assert out["baseModel"] == "accounts/acme/models/tiny" and out["replicaCount"] == 1
    # A bare ID in the CR reads back as the full name.
    bare = deployments.create("acme", "d2", {"baseModel": "tiny"}, "ann")
    assert deployments.to_json(stored(bare), DIRECTORY)["baseModel"] == "accounts/acme/models/tiny"
    assert deployments.scale_patch({"replicaCount": 3}) == {"spec": {"replicas": 3}}
    with pytest.raises(ApiError, match="replicaCount"):
        deployments.scale_patch({"replicaCount": -1})
    with pytest.raises(ApiError, match=r"deployment\.placement: not supported"):
        deployments.create("acme", "d3", {"baseModel": "tiny", "placement": {"region": "X"}}, "ann")


def test_deployment_serving_engine_is_passed_through_and_checked_by_the_crd() -> None:
    gpu = {
        "baseModel": "accounts/acme/models/llama",
        "acceleratorType": "NVIDIA_H100_80GB",
        "acceleratorCount": 2,
        "servingEngine": "VLLM",
    }
    obj = deployments.create("acme", "big", gpu, "ann")
    assert obj["spec"]["servingEngine"] == "VLLM"
    assert_valid(obj)
    assert deployments.to_json(stored(obj), DIRECTORY)["servingEngine"] == "VLLM"
    on_cpu = deployments.create("acme", "c", {**gpu, "acceleratorType": "CPU"}, "ann")
    assert any("VLLM" in str(e) for e in validate(on_cpu).errors)


def test_update_with_and_without_a_mask() -> None:
    spec = {"baseModel": "tiny", "minReplicaCount": 1, "displayName": "old"}
    body = {"displayName": "new", "minReplicaCount": 2}
    resource = deployments.DEPLOYMENTS
    assert updated_spec(spec, body, ["displayName"], resource) == {**spec, "displayName": "new"}
    assert updated_spec(spec, body, None, resource) == {**spec, **body}
    # A masked field missing from the body is cleared.
    assert "displayName" not in updated_spec(spec, {}, ["displayName"], resource)
    with pytest.raises(ApiError, match="updateMask: field 'serverless' cannot be updated"):
        updated_spec(spec, {"serverless": True}, None, resource)


def test_deployed_model_ids_and_full_names() -> None:
    body = {"model": "accounts/acme/models/pirate", "deployment": "accounts/acme/deployments/smol"}
    obj = deployed_models.create("acme", body, "ann")
    assert obj["metadata"]["name"].startswith("pirate-") and len(obj["metadata"]["name"]) == 15
    assert_valid(obj)
    out = deployed_models.to_json(stored(obj, {"state": "DEPLOYED"}), DIRECTORY)
    assert out["model"] == body["model"] and out["deployment"] == body["deployment"]
    assert out["state"] == "DEPLOYED" and out["public"] is False
    with pytest.raises(ApiError, match=r"deployedModel\.deployment: required"):
        deployed_models.create("acme", {"model": "pirate"}, "ann")


def test_fine_tuning_job_round_trip() -> None:
    body = {
        "dataset": "accounts/acme/datasets/chat",
        "baseModel": "accounts/acme/models/tiny",
        "outputModel": "accounts/acme/models/tuned",
        "epochs": 2,
        "loraRank": 8,
    }
    obj = fine_tuning_jobs.create("acme", "job1", body, "ann")
    assert obj["spec"]["outputModel"] == "tuned"
    assert_valid(obj)
    out = fine_tuning_jobs.to_json(stored(obj, {"state": "JOB_STATE_RUNNING"}), DIRECTORY)
    assert out["name"] == "accounts/acme/supervisedFineTuningJobs/job1"
    assert out["outputModel"] == "accounts/acme/models/tuned"
    assert out["state"] == "JOB_STATE_RUNNING" and out["status"]["code"] == "OK"
    failed = fine_tuning_jobs.to_json(stored(obj, {"state": "JOB_STATE_FAILED"}), DIRECTORY)
    assert failed["status"]["code"] == "FAILED_PRECONDITION"
    assert fine_tuning_jobs.new_id().startswith("sftj-")


def test_datasets_uploaded_and_external() -> None:
    spec, upload = datasets.spec_of({"userUploaded": {}, "exampleCount": "3", "format": "CHAT"})
    assert upload and spec == {"format": "CHAT", "exampleCount": 3}
    obj = datasets.create_object(
        "acme", "chat", spec, datasets.uploaded_uri("acme", "chat", "a.jsonl"), "ann"
    )
    assert_valid(obj)
    out = datasets.to_json(stored(obj, {"state": "READY", "exampleCount": 3}), DIRECTORY)
    assert out["userUploaded"] == {} and out["exampleCount"] == "3" and out["state"] == "READY"
    spec, upload = datasets.spec_of({"externalUrl": "https://example.com/x.jsonl"})
    assert not upload and spec["source"] == {"uri": "https://example.com/x.jsonl"}
    with pytest.raises(ApiError, match=r"dataset\.format"):
        datasets.spec_of({"format": "RL"})
    pending = datasets.pending_json(
        "acme", "chat", {"spec": spec, "createdBy": "ann", "files": {}}, DIRECTORY
    )
    assert pending["state"] == "UPLOADING" and pending["createdBy"] == "ann@acme.example"


def test_api_keys_store_only_the_hash_and_show_the_prefix() -> None:
    obj = api_keys.create("acme", "ann", api_keys.new_key_id(), {"displayName": "ci"}, "ann")
    assert_valid(obj)
    assert obj["metadata"]["annotations"]["hearth.dev/key-issuer"] == "gateway"
    user = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "User",
        "metadata": {"name": "ann", "namespace": "acme", "uid": "u-1"},
        "spec": {"role": "user", "email": "ann@acme.example"},
    }
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = api_keys.issued_status(obj, user, "hk_" + "a" * 43, "00" * 16, now)
    assert status["prefix"] == "hk_aaaaaaaaa" and "key" not in status
    # The operator's own verdict on a gateway-issued key: READY, no Secret.
    assert status["state"] == "READY" and "secretName" not in status
    assert "shown once" in status["message"]
    read = stored(obj, status)
    assert api_keys.holds(read, "hk_" + "a" * 43) and not api_keys.holds(read, "hk_" + "b" * 43)
    out = api_keys.to_json(read, DIRECTORY)
    assert out["keyId"] == obj["metadata"]["name"] and out["email"] == "ann@acme.example"
    assert out["secure"] is True and "key" not in out


def test_account_reads_back() -> None:
    account = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "Account",
        "metadata": {"name": "acme"},
        "spec": {"email": "ops@acme.example"},
    }
    out = account_json(stored(account, {"state": "READY"}), DIRECTORY)
    assert out["name"] == "accounts/acme" and out["suspendState"] == "UNSUSPENDED"
    assert out["email"] == "ops@acme.example" and out["state"] == "READY"
