"""hearthctl's deployment verbs, the list/output/error behaviour every resource shares.

Driven through ``main([...])`` against a test double of the control-plane API (a real
HTTP server on localhost, tests/unit/hearthctl_fake.py), which records what hearthctl
sends; the real gateway is in tests/gateway/test_hearthctl_e2e.py.
"""

from __future__ import annotations

import json

import pytest
import yaml

from hearth.cli import main
from tests.unit import hearthctl_fake
from tests.unit.hearthctl_fake import KEY, FakeApi

# The double's fixtures, requested by name below.
api = hearthctl_fake.api
clean_env = hearthctl_fake.clean_env


DEPLOYMENTS = "/v1/accounts/acme/deployments"


def test_create_sends_the_sdk_shape_and_waits_until_ready(api: FakeApi, capsys) -> None:
    api.settle_after = 3
    code = main(
        [
            "create", "deployment", "smollm2",
            "--deployment-id", "d1",
            "--min-replica-count", "1",
            "--scale-up-window", "45s",
            "--load-targets", "default=0.7,requests_per_second=5",
            "--enable-addons",
            "--wait", "--poll-interval", "0.01",
            "-o", "json",
        ]
    )  # fmt: skip
    assert code == 0
    (post,) = api.calls("POST", DEPLOYMENTS)
    assert post.authorization == f"Bearer {KEY}"
    assert post.query == {"deploymentId": "d1"}
    assert post.body == {
        "minReplicaCount": 1,
        "autoscalingPolicy": {
            "scaleUpWindow": "45s",
            "loadTargets": {"default": 0.7, "requests_per_second": 5.0},
        },
        "baseModel": "accounts/acme/models/smollm2",
        "enableAddons": True,
    }
    assert len(api.calls("GET", f"{DEPLOYMENTS}/d1")) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out)["state"] == "READY"
    assert "deployment d1: CREATING" in captured.err
    assert "deployment d1: READY" in captured.err


def test_create_passes_the_serving_engine(api: FakeApi) -> None:
    code = main(
        [
            "create", "deployment", "llama",
            "--deployment-id", "big",
            "--accelerator-type", "NVIDIA_H100_80GB",
            "--accelerator-count", "2",
            "--serving-engine", "VLLM",
        ]
    )  # fmt: skip
    assert code == 0
    (post,) = api.calls("POST", DEPLOYMENTS)
    assert post.body["servingEngine"] == "VLLM"
    assert post.body["acceleratorCount"] == 2


def test_references_keep_full_and_short_names(api: FakeApi) -> None:
    assert main(["create", "deployment", "accounts/hearth/models/smollm2", "-o", "json"]) == 0
    assert main(["create", "deployment", "hearth/qwen", "-o", "json"]) == 0
    bodies = [call.body["baseModel"] for call in api.calls("POST", DEPLOYMENTS)]
    assert bodies == ["accounts/hearth/models/smollm2", "accounts/hearth/models/qwen"]
    # No --deployment-id: the server generates the ID; none is sent.
    assert all("deploymentId" not in call.query for call in api.calls("POST", DEPLOYMENTS))


def test_list_follows_every_page_and_prints_a_table(api: FakeApi, capsys) -> None:
    for index in range(5):
        api.add("deployments", f"d{index}", baseModel="accounts/acme/models/m", state="READY",
                replicaCount=index, desiredReplicaCount=2)  # fmt: skip
    assert main(["list", "deployments", "--page-size", "2"]) == 0
    pages = api.calls("GET", DEPLOYMENTS)
    assert [call.query for call in pages] == [
        {"pageSize": "2"},
        {"pageSize": "2", "pageToken": "2"},
        {"pageSize": "2", "pageToken": "4"},
    ]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME", "BASE", "MODEL", "STATE", "REPLICAS", "MIN", "MAX", "ACCELERATOR", "CREATED"
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == [f"d{i}" for i in range(5)]
    assert lines[4].split()[1:4] == ["accounts/acme/models/m", "READY", "3/2"]
    # Columns line up: every row starts its STATE column where the header does.
    column = lines[0].index("STATE")
    assert all(line[column:].startswith("READY") for line in lines[1:])


def test_list_passes_filter_order_and_limit(api: FakeApi, capsys) -> None:
    api.add("deployments", "a", state="READY")
    api.add("deployments", "b", state="CREATING")
    api.add("deployments", "c", state="READY")
    code = main(
        ["list", "deployments", "--filter", 'state="READY"', "--order-by", "create_time desc",
         "--limit", "1", "--show-deleted", "-o", "json"]
    )  # fmt: skip
    assert code == 0
    (call,) = api.calls("GET", DEPLOYMENTS)
    assert call.query == {
        "filter": 'state="READY"',
        "orderBy": "create_time desc",
        "showDeleted": "true",
    }
    assert [item["name"] for item in json.loads(capsys.readouterr().out)] == [
        "accounts/acme/deployments/a"
    ]


def test_get_prints_fields_and_yaml(api: FakeApi, capsys) -> None:
    api.add("deployments", "d1", state="READY", autoscalingPolicy={"scaleUpWindow": "30s"})
    assert main(["get", "deployment", "d1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name:", "accounts/acme/deployments/d1"]
    assert lines[-1] == "autoscalingPolicy.scaleUpWindow: 30s"
    assert len({line.index(line.split()[1]) for line in lines}) == 1  # values aligned
    assert main(["get", "deployment", "accounts/acme/deployments/d1", "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["autoscalingPolicy"] == {"scaleUpWindow": "30s"}


def test_update_sends_a_mask_and_keeps_the_rest_of_the_policy(api: FakeApi) -> None:
    api.add(
        "deployments", "d1", autoscalingPolicy={"scaleUpWindow": "30s", "scaleDownWindow": "10m"}
    )
    assert main(["update", "deployment", "d1", "--max-replica-count", "3",
                 "--scale-down-window", "5m", "-o", "json"]) == 0  # fmt: skip
    (patch,) = api.calls("PATCH", f"{DEPLOYMENTS}/d1")
    assert patch.query == {"updateMask": "max_replica_count,autoscaling_policy"}
    assert patch.body == {
        "maxReplicaCount": 3,
        "autoscalingPolicy": {"scaleUpWindow": "30s", "scaleDownWindow": "5m"},
    }


def test_update_without_fields_is_a_usage_error(api: FakeApi, capsys) -> None:
    assert main(["update", "deployment", "d1"]) == 2
    assert "nothing to update" in capsys.readouterr().err
    assert api.requests == []


def test_scale_and_delete(api: FakeApi, capsys) -> None:
    api.add("deployments", "d1", state="READY")
    assert main(["scale", "deployment", "d1", "--replica-count", "2"]) == 0
    (scale,) = api.calls("PATCH", f"{DEPLOYMENTS}/d1:scale")
    assert scale.body == {"replicaCount": 2}
    assert "scaling to 2 replicas" in capsys.readouterr().out
    assert main(["delete", "deployment", "d1", "--hard", "--wait", "--poll-interval", "0"]) == 0
    (delete,) = api.calls("DELETE", f"{DEPLOYMENTS}/d1")
    assert delete.query == {"hard": "true"}
    assert "deleted deployment d1" in capsys.readouterr().out


def test_noun_verb_grammar_is_the_same_command(api: FakeApi) -> None:
    api.add("deployments", "d1", state="READY")
    assert main(["deployment", "scale", "d1", "--replica-count", "0"]) == 0
    assert api.calls("PATCH", f"{DEPLOYMENTS}/d1:scale")[0].body == {"replicaCount": 0}


def test_server_errors_print_its_message_and_exit_1(api: FakeApi, capsys) -> None:
    assert main(["get", "deployment", "missing"]) == 1
    err = capsys.readouterr().err
    assert "GET /v1/accounts/acme/deployments/missing" in err
    assert "deployment 'missing' not found (HTTP 404 NOT_FOUND)" in err
    api.add("deployments", "d1")
    assert main(["create", "deployment", "m", "--deployment-id", "d1"]) == 1
    assert "already exists (HTTP 409 ALREADY_EXISTS)" in capsys.readouterr().err
    assert main(["get", "deployment", "d1", "--api-key", "wrong"]) == 1
    assert "invalid API key (HTTP 401 UNAUTHENTICATED)" in capsys.readouterr().err


def test_wait_ending_failed_or_late_has_its_own_exit_status(api: FakeApi, capsys) -> None:
    api.fail["deployments/bad"] = "no node has 2 GPUs"
    code = main(["create", "deployment", "m", "--deployment-id", "bad", "--wait",
                 "--poll-interval", "0"])  # fmt: skip
    assert code == 4
    assert "deployment bad is FAILED: no node has 2 GPUs" in capsys.readouterr().err
    api.settle_after = 10**6
    code = main(["create", "deployment", "m", "--deployment-id", "slow", "--wait",
                 "--wait-timeout", "50ms", "--poll-interval", "0.01"])  # fmt: skip
    assert code == 5
    assert "deployment slow is still CREATING after 0.05s" in capsys.readouterr().err


def test_unreachable_gateway_and_missing_settings(clean_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HEARTH_ACCOUNT_ID", "acme")
    monkeypatch.setenv("HEARTH_API_KEY", "k")
    assert main(["list", "deployments"]) == 2
    assert "no base_url: pass --base-url, set HEARTH_BASE_URL or FIREWORKS_BASE_URL" in (
        capsys.readouterr().err
    )
    assert main(["list", "deployments", "--base-url", "http://127.0.0.1:9"]) == 3
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


def test_a_name_of_another_collection_is_refused(api: FakeApi, capsys) -> None:
    assert main(["get", "deployment", "accounts/acme/models/m"]) == 2
    assert "is not a deployments name" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["x", "a=b=c", "=1"])
def test_bad_load_targets_are_usage_errors(api: FakeApi, bad: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["create", "deployment", "m", "--load-targets", bad])
    assert exit_info.value.code == 2
