"""hearthctl, through its entry point (``python -m hearth.cli``), against the real gateway's
control plane in front of the real operator and hearth-server pods on the emulated API.

One user (role ``user``) whose key comes from an ApiKey object, as with kubectl; every
hearthctl run is a separate process reading the profile ``login`` wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.component import free_port, read_key
from tests.gateway.test_gateway_component import api_key, model, user
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import Cluster, emulated_cluster, local_process_settings

pytest.importorskip("torch")
from hearth_server.models.tiny import build_tiny_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ACCOUNT = "apiVersion: hearth.dev/v1alpha1\nkind: Account\nmetadata: {name: acme}\nspec: {}\n"
SETUP = "---".join(
    [
        user("acme", "dan", "user"),
        api_key("acme", "dan-key", "dan"),
        model("acme", "tiny", "pvc://artifacts/tiny"),
    ]
)


@dataclass
class Stack:
    cluster: Cluster
    url: str
    key: str
    config: Path

    def hearthctl(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run hearthctl as a user would, with only the profile file for settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTH_", "FIREWORKS_"))}
        env["HEARTH_CONFIG"] = str(config or self.config)
        return subprocess.run(
            [sys.executable, "-m", "hearth.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def ok(self, *args: str) -> str:
        result = self.hearthctl(*args)
        assert result.returncode == 0, f"hearthctl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("hearthctl")
    artifacts = tmp / "pvc" / "artifacts"
    build_tiny_model_dir(artifacts / "tiny")
    settings = local_process_settings(tmp / "pvc", resync_seconds=1.0)
    with (
        emulated_cluster(settings, tmp) as cluster,
        ProcessKubelet(cluster.api, log_dir=tmp / "pod-logs", backoff_max=1.0),
        cluster.operator(),
    ):
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(SETUP)
        key = read_key(cluster, "acme", "dan-key")
        port = free_port()
        log = (tmp / "gateway.log").open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hearth_gateway.cli",
                "--kubeconfig",
                str(cluster.api.kubeconfig_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--upload-dir",
                str(artifacts),
            ],
            env={**os.environ, "HEARTH_GATEWAY_LEDGER_PATH": str(tmp / "ledger.sqlite3")},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            eventually(
                lambda: process.poll() is None and httpx.get(f"{url}/health").status_code == 200,
                timeout=60,
                message="the gateway never became healthy",
            )
            yield Stack(cluster, url, key, tmp / "home" / "config.toml")
        finally:
            process.terminate()
            process.wait(30)
            log.close()
            print((tmp / "gateway.log").read_text()[-5000:])


@pytest.fixture(scope="module")
def logged_in(stack: Stack) -> Stack:
    """dan's profile, written by ``hearthctl login``."""
    stack.ok("login", "--base-url", stack.url, "-a", "acme", "--api-key", stack.key,
             "--user-id", "dan")  # fmt: skip
    return stack


def test_login_refuses_a_wrong_key_and_stores_a_good_one(stack: Stack, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    login = ("login", "--base-url", stack.url, "-a", "acme")
    refused = stack.hearthctl(*login, "--api-key", "nope", config=config)
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr
    assert not config.exists()
    assert stack.hearthctl(*login, "--api-key", stack.key, config=config).returncode == 0
    shown = stack.hearthctl("get", "account", "-o", "json", config=config)
    assert json.loads(shown.stdout)["name"] == "accounts/acme"


def test_deployment_lifecycle(logged_in: Stack) -> None:
    stack = logged_in
    created = stack.json(
        "create", "deployment", "tiny", "--deployment-id", "web",
        "--min-replica-count", "1", "--max-replica-count", "2", "--accelerator-type", "CPU",
        "--wait", "--wait-timeout", "4m", "--poll-interval", "0.5",
    )  # fmt: skip
    assert isinstance(created, dict)
    assert created["name"] == "accounts/acme/deployments/web"
    assert created["state"] == "READY"
    assert created["baseModel"] == "accounts/acme/models/tiny"
    # The CR is the source of truth: kubectl sees what hearthctl made.
    obj = stack.cluster.get("Deployment", "web", "acme")
    assert obj is not None and obj["spec"]["minReplicaCount"] == 1

    stack.ok("create", "deployment", "tiny", "--deployment-id", "idle")
    table = stack.ok("list", "deployments", "--page-size", "1").splitlines()
    assert table[0].split()[:2] == ["NAME", "BASE"]
    assert sorted(line.split()[0] for line in table[1:]) == ["idle", "web"]  # two pages

    stack.ok("scale", "deployment", "web", "--replica-count", "2")
    stack.cluster.wait("Deployment", "web", lambda d: d["spec"].get("replicaCount") == 2)

    def two_replicas() -> bool:
        shown = stack.json("get", "deployment", "web")
        return isinstance(shown, dict) and shown.get("replicaCount") == 2

    eventually(two_replicas, timeout=240, interval=1.0, message="web never had 2 replicas")

    for name in ("web", "idle"):
        stack.ok("delete", "deployment", name, "--wait", "--wait-timeout", "3m",
                 "--poll-interval", "0.5")  # fmt: skip
    missing = stack.hearthctl("get", "deployment", "web")
    assert missing.returncode == 1
    assert "HTTP 404" in missing.stderr


def test_api_key_is_shown_once_works_and_is_revoked(logged_in: Stack) -> None:
    stack = logged_in
    issued = stack.json("create", "api-key", "--key-name", "ci")
    assert isinstance(issued, dict)
    key, key_id = issued["key"], issued["keyId"]
    listed = stack.ok("list", "api-keys")
    assert key_id in listed and key not in listed

    def works() -> bool:
        return stack.hearthctl("get", "account", "--api-key", key).returncode == 0

    eventually(works, timeout=60, interval=0.5, message="the new key never worked")
    stack.ok("delete", "api-key", key_id)

    def refused() -> bool:
        result = stack.hearthctl("get", "account", "--api-key", key)
        return result.returncode == 1 and "HTTP 401" in result.stderr

    eventually(refused, timeout=60, interval=0.5, message="the deleted key still works")


CHAT = json.dumps(
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
)


def test_dataset_upload_is_validated_by_the_server(logged_in: Stack, tmp_path: Path) -> None:
    stack = logged_in
    good = tmp_path / "train.jsonl"
    good.write_text(f"{CHAT}\n{CHAT}\n{CHAT}\n")
    ready = stack.json("create", "dataset", "chats", "--file", str(good), "--poll-interval", "0.5")
    assert ready["state"] == "READY"
    assert ready["exampleCount"] == "3"
    assert "chats" in stack.ok("list", "datasets")

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    failed = stack.hearthctl("create", "dataset", "bad", str(bad), "--poll-interval", "0.5")
    assert failed.returncode == 4, failed.stderr
    assert "dataset bad is FAILED" in failed.stderr

    for name in ("chats", "bad"):
        stack.ok("delete", "dataset", name)
