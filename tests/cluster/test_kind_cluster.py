"""Hearth on a real Kubernetes cluster: the images built, a kind cluster, the chart installed,
the quickstart applied, a CPU deployment READY and asked through the gateway.

Runs where ``docker`` and ``kind`` work (`.github/workflows/cluster.yml` runs it); skipped
elsewhere with the reason, as on the machines Hearth is developed on (no container engine).
Everything else in the test suite uses the emulated API server and the process kubelet;
this is the one place the real ones are used.

    .venv/bin/pytest -q tests/cluster -rs
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hearth_operator.constants import user_api_key_secret_name
from hearth_operator.planning.api_key import key_from_secret
from tests.harness.tools import ROOT, helm_path, kubectl_path

#: Images the quickstart needs (the trainer is not used by it).
IMAGES = ("hearth-operator", "hearth-gateway", "hearth-server")
REGISTRY = "hearth.local"
TAG = "kind"
NAMESPACE = "hearth-system"
ACCOUNT = "acme"
MODEL = f"accounts/{ACCOUNT}/models/smollm2-135m-instruct"


def why_not_here() -> str | None:
    """Why this machine cannot run the suite, or None when it can."""
    for name in ("docker", "kind"):
        if shutil.which(name) is None:
            return f"`{name}` is not installed (this suite needs a container engine and kind)"
    if kubectl_path() is None or helm_path() is None:
        return "kubectl or helm missing: run `make tools`"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`docker info` failed: {probe.stderr.strip()[:200]}"
    return None


REASON = why_not_here()
if REASON is not None:
    print(f"tests/cluster skipped: {REASON}")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
]


def run(*argv: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure raise with its output (what a CI log needs)."""
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise AssertionError(
            f"`{' '.join(argv)}` exited {done.returncode}\n{done.stdout[-4000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    return done.stdout


@dataclass
class Kind:
    name: str
    kubeconfig: Path

    def kubectl(self, *args: str, timeout: float = 300) -> str:
        return run(
            str(kubectl_path()), "--kubeconfig", str(self.kubeconfig), *args, timeout=timeout
        )

    def helm(self, *args: str, timeout: float = 900) -> str:
        return run(str(helm_path()), "--kubeconfig", str(self.kubeconfig), *args, timeout=timeout)

    def diagnostics(self) -> str:
        parts = []
        for args in (
            ("get", "pods", "-A", "-o", "wide"),
            ("get", "deployments.hearth.dev,deployedmodels.hearth.dev", "-A", "-o", "yaml"),
            ("get", "events", "-A", "--sort-by=.lastTimestamp"),
            ("logs", "-n", NAMESPACE, "deployment/hearth-operator", "--tail=200"),
            ("logs", "-n", NAMESPACE, "deployment/hearth-gateway", "--tail=200"),
        ):
            try:
                parts.append(self.kubectl(*args))
            except AssertionError as error:
                parts.append(str(error))
        return "\n".join(parts)


@pytest.fixture(scope="module")
def images() -> list[str]:
    built = []
    for image in IMAGES:
        reference = f"{REGISTRY}/{image}:{TAG}"
        run(
            "docker", "build", "--file", str(ROOT / "images" / image / "Dockerfile"),
            "--build-arg", "FLAVOR=cpu", "--tag", reference, str(ROOT),
            timeout=3600,
        )  # fmt: skip
        built.append(reference)
    return built


@pytest.fixture(scope="module")
def cluster(images: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kind]:
    name = f"hearth-{uuid.uuid4().hex[:6]}"
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    run("kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig),
        "--wait", "180s", timeout=600)  # fmt: skip
    kind = Kind(name, kubeconfig)
    try:
        for reference in images:
            run("kind", "load", "docker-image", reference, "--name", name, timeout=900)
        yield kind
    finally:
        run("kind", "delete", "cluster", "--name", name, timeout=300)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(kind: Kind, what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except AssertionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}\n{kind.diagnostics()}")
        time.sleep(5)


def test_quickstart_on_kind_answers_through_the_gateway(cluster: Kind) -> None:
    cluster.helm(
        "install", "hearth", str(ROOT / "charts" / "hearth"),
        "--namespace", NAMESPACE, "--create-namespace",
        "--set", f"images.registry={REGISTRY}", "--set", f"images.tag={TAG}",
        "--set", "images.pullPolicy=Never",
        "--wait", "--timeout", "10m",
    )  # fmt: skip
    cluster.kubectl("apply", "-f", str(ROOT / "examples" / "quickstart"))
    key_manifest = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ApiKey",
        "metadata": {"name": "alice-key", "namespace": ACCOUNT},
        "spec": {"user": "alice"},
    }
    manifest = cluster.kubeconfig.parent / "key.json"
    manifest.write_text(json.dumps(key_manifest))
    cluster.kubectl("apply", "-f", str(manifest))

    def state(kind: str, name: str) -> str:
        found = json.loads(cluster.kubectl("get", kind, name, "-n", ACCOUNT, "-o", "json"))
        return str((found.get("status") or {}).get("state"))

    wait_for(
        cluster, "the ApiKey", lambda: state("apikeys.hearth.dev", "alice-key") == "READY", 300
    )
    secret = json.loads(
        cluster.kubectl(
            "get", "secret", user_api_key_secret_name("alice-key"), "-n", ACCOUNT, "-o", "json"
        )
    )
    key = key_from_secret(secret)
    assert key, "the operator wrote no key into the ApiKey's Secret"
    wait_for(
        cluster,
        "Deployment smollm2-cpu READY",
        lambda: state("deployments.hearth.dev", "smollm2-cpu") == "READY",
        1200,
    )

    port = free_port()
    forward = subprocess.Popen(
        [
            str(kubectl_path()), "--kubeconfig", str(cluster.kubeconfig), "port-forward",
            "-n", NAMESPACE, "service/hearth-gateway", f"{port}:80",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        from openai import OpenAI

        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=10)
        answer = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=8,
            temperature=0,
        )
        text = answer.choices[0].message.content or ""
        assert text.strip(), answer
        assert answer.usage is not None and answer.usage.completion_tokens > 0
    finally:
        forward.terminate()
        forward.wait(30)
