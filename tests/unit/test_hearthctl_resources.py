"""hearthctl's model, dataset, LoRA, fine-tuning, user and API-key verbs.

Driven through ``main([...])`` against a test double of the control-plane API (a real
HTTP server on localhost, tests/unit/hearthctl_fake.py) that records the requests.
"""

from __future__ import annotations

import json
from pathlib import Path

from hearth.cli import main
from tests.unit import hearthctl_fake
from tests.unit.hearthctl_fake import FakeApi

# The double's fixtures, requested by name below.
api = hearthctl_fake.api
clean_env = hearthctl_fake.clean_env


BASE = "/v1/accounts/acme"
CHAT = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'


def test_dataset_create_uploads_through_a_signed_url_and_waits(
    api: FakeApi, tmp_path: Path, capsys
) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(f"{CHAT}\n\n{CHAT}\n{CHAT}\n")
    code = main(["create", "dataset", "chats", "--file", str(data), "--display-name", "Chats",
                 "--poll-interval", "0", "-o", "json"])  # fmt: skip
    assert code == 0
    create, endpoint, validate = api.calls("POST")
    assert (create.path, create.body) == (
        f"{BASE}/datasets",
        {
            "datasetId": "chats",
            "dataset": {"userUploaded": {}, "exampleCount": "3", "displayName": "Chats"},
        },
    )
    assert endpoint.path == f"{BASE}/datasets/chats:getUploadEndpoint"
    assert endpoint.body == {"filenameToSize": {"train.jsonl": str(data.stat().st_size)}}
    assert validate.path == f"{BASE}/datasets/chats:validateUpload"
    (put,) = api.calls("PUT")
    assert put.authorization is None  # the signed URL gets no API key
    assert put.content_type == "application/octet-stream"
    assert api.uploads["datasets/chats/train.jsonl"] == data.read_bytes()
    assert json.loads(capsys.readouterr().out)["state"] == "READY"


def test_dataset_that_fails_validation_exits_4_with_the_reason(
    api: FakeApi, tmp_path: Path, capsys
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": []}\n')
    api.fail["datasets/bad"] = "line 1: messages must not be empty"
    assert main(["create", "dataset", "bad", str(data), "--poll-interval", "0"]) == 4
    assert "dataset bad is FAILED: line 1: messages must not be empty" in capsys.readouterr().err


def test_dataset_create_needs_an_existing_file(api: FakeApi, capsys) -> None:
    assert main(["create", "dataset", "d", "--file", "/nonexistent.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert api.requests == []


def test_dataset_get_list_update_delete(api: FakeApi, capsys) -> None:
    api.add("datasets", "a", state="READY", format="CHAT", exampleCount="12")
    assert main(["list", "datasets"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:4] == ["a", "READY", "CHAT", "12"]
    assert main(["update", "dataset", "a", "--display-name", "A", "-o", "json"]) == 0
    assert api.calls("PATCH")[0].query == {"updateMask": "display_name"}
    assert main(["delete", "dataset", "a"]) == 0
    assert api.calls("DELETE")[0].path == f"{BASE}/datasets/a"


def test_model_create_uploads_a_lora_directory(api: FakeApi, tmp_path: Path, capsys) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"r": 16, "target_modules": ["q_proj", "v_proj"]})
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    (adapter / ".gitattributes").write_text("ignored")
    code = main(
        ["create", "model", "my-lora", str(adapter), "--base-model", "hearth/smollm2",
         "--display-name", "Mine", "--wait", "--poll-interval", "0", "-o", "json"]
    )  # fmt: skip
    assert code == 0
    create, endpoint = api.calls("POST")
    assert create.body == {
        "modelId": "my-lora",
        "model": {
            "displayName": "Mine",
            "kind": "HF_PEFT_ADDON",
            "peftDetails": {
                "baseModel": "accounts/hearth/models/smollm2",
                "r": 16,
                "targetModules": ["q_proj", "v_proj"],
            },
        },
    }
    config_size = str((adapter / "adapter_config.json").stat().st_size)
    assert endpoint.body == {
        "filenameToSize": {"adapter_config.json": config_size, "adapter_model.safetensors": "64"}
    }
    assert sorted(api.uploads) == [
        "models/my-lora/adapter_config.json",
        "models/my-lora/adapter_model.safetensors",
    ]
    assert api.calls("GET", f"{BASE}/models/my-lora:validateUpload")
    assert json.loads(capsys.readouterr().out)["state"] == "READY"


def test_model_from_a_source_uri_and_updates(api: FakeApi, capsys) -> None:
    assert main(["create", "model", "base", "--source", "hf://org/repo", "--public"]) == 0
    assert api.calls("POST")[0].body["model"] == {
        "public": True,
        "kind": "HF_BASE_MODEL",
        "source": {"uri": "hf://org/repo"},
    }
    capsys.readouterr()
    assert main(["update", "model", "base", "--no-public", "--context-length", "4096"]) == 0
    (patch,) = api.calls("PATCH")
    assert patch.query == {"updateMask": "public,context_length"}
    assert patch.body == {"public": False, "contextLength": 4096}
    assert main(["model", "list"]) == 0
    assert "base" in capsys.readouterr().out


def test_load_lora_and_unload_by_model(api: FakeApi, capsys) -> None:
    code = main(["load-lora", "my-lora", "--deployment", "d1", "--wait", "--poll-interval", "0",
                 "-o", "json"])  # fmt: skip
    assert code == 0
    (load,) = api.calls("POST", f"{BASE}/deployedModels")
    assert load.body == {
        "model": "accounts/acme/models/my-lora",
        "deployment": "accounts/acme/deployments/d1",
    }
    loaded = json.loads(capsys.readouterr().out)
    assert loaded["state"] == "DEPLOYED"
    deployed_id = loaded["name"].rsplit("/", 1)[-1]

    assert main(["model", "unload-lora", "my-lora", "--wait", "--poll-interval", "0"]) == 0
    assert api.calls("DELETE")[0].path == f"{BASE}/deployedModels/{deployed_id}"
    assert f"unloaded deployed model {deployed_id}" in capsys.readouterr().out


def test_unload_needs_the_deployment_when_loaded_twice(api: FakeApi, capsys) -> None:
    for deployment in ("d1", "d2"):
        api.add("deployedModels", f"x-{deployment}", model="accounts/acme/models/x",
                deployment=f"accounts/acme/deployments/{deployment}")  # fmt: skip
    assert main(["unload-lora", "x"]) == 2
    assert "loaded on several deployments" in capsys.readouterr().err
    assert main(["unload-lora", "x", "--deployment", "d2"]) == 0
    assert api.calls("DELETE")[0].path == f"{BASE}/deployedModels/x-d2"
    assert main(["unload-lora", "nothing"]) == 2
    assert "accounts/acme/models/nothing is not loaded" in capsys.readouterr().err


def test_deployed_model_update_and_delete_by_id(api: FakeApi) -> None:
    api.add("deployedModels", "x-1", model="accounts/acme/models/x", state="DEPLOYED")
    assert main(["update", "deployed-model", "x-1", "--default", "-o", "json"]) == 0
    assert api.calls("PATCH")[0].query == {"updateMask": "default"}
    assert api.calls("PATCH")[0].body == {"default": True}
    assert main(["delete", "deployed-model", "x-1"]) == 0
    assert api.calls("DELETE")[0].path == f"{BASE}/deployedModels/x-1"


def test_sftj_create_shows_training_progress_until_complete(api: FakeApi, capsys) -> None:
    api.job_progress = [
        {"percent": 0},
        {"percent": 40, "epoch": 1, "step": 4, "totalSteps": 10, "trainLoss": 2.5},
        {"percent": 100, "epoch": 2, "step": 10, "totalSteps": 10, "trainLoss": 1.25,
         "evalLoss": 1.5},
    ]  # fmt: skip
    code = main(["create", "sftj", "--base-model", "hearth/smollm2", "--dataset", "chats",
                 "--output-model", "tuned", "--job-id", "j1", "--epochs", "2",
                 "--lora-rank", "16", "--wait", "--poll-interval", "0"])  # fmt: skip
    assert code == 0
    (create,) = api.calls("POST", f"{BASE}/supervisedFineTuningJobs")
    assert create.query == {"supervisedFineTuningJobId": "j1"}
    assert create.body == {
        "dataset": "accounts/acme/datasets/chats",
        "baseModel": "accounts/hearth/models/smollm2",
        "outputModel": "tuned",
        "epochs": 2,
        "loraRank": 16,
    }
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "sftj j1: RUNNING  0%",
        "sftj j1: RUNNING  epoch 1/2  step 4/10  loss 2.5000  40%",
        "sftj j1: COMPLETED  epoch 2/2  step 10/10  loss 1.2500  eval loss 1.5000  100%",
    ]


def test_sftj_needs_one_starting_point_and_has_cancel_resume(api: FakeApi, capsys) -> None:
    assert main(["create", "sftj", "--dataset", "d"]) == 2
    assert "exactly one of --base-model and --warm-start-from" in capsys.readouterr().err
    api.add("supervisedFineTuningJobs", "j1", state="JOB_STATE_RUNNING")
    assert main(["cancel", "sftj", "j1"]) == 0
    assert main(["supervised-fine-tuning-job", "resume", "j1"]) == 0
    assert [call.path for call in api.calls("POST")] == [
        f"{BASE}/supervisedFineTuningJobs/j1:cancel",
        f"{BASE}/supervisedFineTuningJobs/j1:resume",
    ]


def test_users_and_api_keys(api: FakeApi, capsys, monkeypatch) -> None:
    code = main(["create", "user", "bob", "--role", "contributor", "--email", "bob@example.com",
                 "--wait", "--poll-interval", "0", "-o", "json"])  # fmt: skip
    assert code == 0
    (create,) = api.calls("POST", f"{BASE}/users")
    assert create.query == {"userId": "bob"}
    assert create.body == {"role": "contributor", "email": "bob@example.com"}
    assert json.loads(capsys.readouterr().out)["state"] == "READY"

    assert main(["create", "api-key", "--user", "bob", "--key-name", "ci",
                 "--expire-time", "2030-01-02"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    (issue,) = api.calls("POST", f"{BASE}/users/bob/apiKeys")
    assert issue.body == {"apiKey": {"displayName": "ci", "expireTime": "2030-01-02T00:00:00Z"}}
    key_id = next(iter(api.api_keys["bob"]))
    assert f"key:    hk_abc_secret_{key_id}" in out and "only this once" in out

    monkeypatch.setenv("HEARTH_USER_ID", "bob")  # the owner when --user is not given
    assert main(["list", "api-keys"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and "secret" not in listed
    assert main(["delete", "api-key", key_id]) == 0
    assert api.calls("POST", f"{BASE}/users/bob/apiKeys:delete")[0].body == {"keyId": key_id}
    assert api.api_keys["bob"] == {}

    assert main(["update", "user", "bob", "--role", "user", "-o", "json"]) == 0
    assert api.calls("PATCH")[0].query == {"updateMask": "role"}
    assert main(["get", "account"]) == 0
    assert "accounts/acme" in capsys.readouterr().out


def test_api_key_needs_an_owner(api: FakeApi, capsys) -> None:
    assert main(["list", "api-keys"]) == 2
    assert "whose keys? give --user" in capsys.readouterr().err
