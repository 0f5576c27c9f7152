"""``hearthctl local up --detach`` as a user runs it, end to end, twice.

Real: hearthctl, kubectl (``make tools``), the operator, the gateway and hearth-server on a
tiny random Llama. Emulated: the API server and the kubelet (that is what ``local`` is).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.tools import kubectl_path, missing_reason
from tests.harness.waiting import eventually

pytest.importorskip("torch")
from hearth_server.models.tiny import build_tiny_model_dir

KUBECTL = kubectl_path()
HEARTHCTL = str(Path(sys.executable).parent / "hearthctl")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(KUBECTL is None, reason=missing_reason("kubectl")),
]

MANIFESTS = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: tiny, namespace: local}
spec: {kind: HF_BASE_MODEL, source: {uri: 'pvc://artifacts/tiny'}}
---
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: tiny-cpu, namespace: local}
spec: {baseModel: tiny, acceleratorType: CPU, minReplicaCount: 1}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class User:
    """Someone at a shell with HEARTH_HOME set."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "HEARTH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        self.env.pop("KUBECONFIG", None)
        self.ports = ["--api-port", str(free_port()), "--gateway-port", str(free_port())]

    def run(self, *argv: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        if ok:
            assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
        return done

    def hearthctl(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(HEARTHCTL, "local", *args, ok=ok)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        assert KUBECTL is not None
        done = subprocess.run(
            [str(KUBECTL), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"kubectl {args}: {done.stderr}"
        return done.stdout

    def up(self) -> str:
        """The printed key; KUBECONFIG set from the printed export line."""
        out = self.hearthctl("up", "--detach", *self.ports).stdout
        assert "The Kubernetes API is EMULATED" in out and "LOCAL PROCESSES" in out
        exports = dict(re.findall(r"export (\w+)=(\S+)", out))
        self.env["KUBECONFIG"] = exports["KUBECONFIG"]
        return exports["HEARTH_API_KEY"]

    def state(self) -> dict:
        return dict(json.loads((self.home / "local.json").read_text()))

    def deployment_state(self) -> str | None:
        out = self.kubectl("-n", "local", "get", "deployment.hearth.dev", "tiny-cpu", "-o", "json")
        return (json.loads(out).get("status") or {}).get("state")

    def chat(self, key: str) -> httpx.Response:
        return httpx.post(
            f"{self.state()['gateway_url']}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "accounts/local/models/tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
            },
            timeout=60,
        )

    def served(self, key: str) -> httpx.Response | None:
        answer = self.chat(key)
        return answer if answer.status_code == 200 else None

    def logs(self) -> str:
        parts = []
        for path in sorted((self.home / "local" / "logs").rglob("*.log")):
            parts.append(f"== {path}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    person = User(tmp_path / "hearth-home")
    build_tiny_model_dir(person.home / "local" / "pvc" / "artifacts" / "tiny")
    try:
        yield person
    finally:
        done = person.hearthctl("down", ok=False)
        print(done.stdout, done.stderr, person.logs())


def test_up_serve_down_up_again(user: User) -> None:
    key = user.up()
    assert key.startswith("hk_") and user.state()["api_key"] == key

    assert "account.hearth.dev/local" in user.kubectl("get", "accounts", "-o", "name")
    second = user.hearthctl("up", "--detach", *user.ports, ok=False)
    assert second.returncode == 1
    assert "a local Hearth is already running" in second.stderr

    user.kubectl("apply", "-f", "-", stdin=MANIFESTS)
    eventually(lambda: user.deployment_state() == "READY", timeout=240, interval=1.0)
    answer = eventually(lambda: user.served(key), timeout=60)
    assert answer.headers["x-hearth-deployment"] == "accounts/local/deployments/tiny-cpu"
    assert answer.json()["usage"]["completion_tokens"] > 0

    status = user.hearthctl("status").stdout
    assert "local Hearth: running" in status and "EMULATED" in status
    assert "emulated Kubernetes API" in status and "answers" in status
    assert re.search(r"local/tiny-cpu-\S+: Running, ready", status), status

    down = user.hearthctl("down").stdout
    assert "stopped; the objects are kept" in down
    assert not (user.home / "local.json").exists()
    assert user.hearthctl("status", ok=False).returncode == 1

    # Up again: the same objects, the same key, the pod started again.
    assert user.up() == key
    assert "deployment.hearth.dev/tiny-cpu" in user.kubectl(
        "-n", "local", "get", "deployments.hearth.dev", "-o", "name"
    )
    eventually(lambda: user.deployment_state() == "READY", timeout=240, interval=1.0)
    answer = eventually(lambda: user.served(key), timeout=120)
    assert answer.json()["usage"]["completion_tokens"] > 0
    pods = json.loads(user.kubectl("-n", "local", "get", "pods", "-o", "json"))["items"]
    server = [p for p in pods if p["metadata"]["name"].startswith("tiny-cpu-")]
    assert len(server) == 1
    assert server[0]["status"]["containerStatuses"][0]["restartCount"] >= 1, (
        "a pod restored from before counts as restarted"
    )
    assert "stopped" in user.hearthctl("down").stdout
