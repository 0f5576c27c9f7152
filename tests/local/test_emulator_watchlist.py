"""Streaming lists (``sendInitialEvents``), as client-go's WatchList and kubectl wait use them."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from hearth.local.emulator import KubeEmulatorServer
from tests.harness.tools import kubectl_path, missing_reason
from tests.harness.waiting import eventually

pytestmark = pytest.mark.timeout(60)

STREAM = "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"


def config_map(name: str, namespace: str = "default", value: str = "") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": value},
    }


def test_initial_events_then_a_bookmark_then_changes() -> None:
    with KubeEmulatorServer() as api:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
        api.create(config_map("a"))
        api.create(config_map("b"))
        api.create(config_map("elsewhere", "other"))
        url = f"{api.url}/api/v1/namespaces/default/configmaps?watch=true&{STREAM}"
        with httpx.stream("GET", url, timeout=10) as response:
            lines = response.iter_lines()
            first = [json.loads(next(lines)) for _ in range(3)]
            assert [(e["type"], e["object"]["metadata"]["name"]) for e in first[:2]] == [
                ("ADDED", "a"),
                ("ADDED", "b"),
            ]
            bookmark = first[2]
            assert bookmark["type"] == "BOOKMARK"
            assert bookmark["object"]["kind"] == "ConfigMap"
            meta = bookmark["object"]["metadata"]
            assert meta["annotations"] == {"k8s.io/initial-events-end": "true"}
            assert int(meta["resourceVersion"]) >= int(
                first[1]["object"]["metadata"]["resourceVersion"]
            )
            api.create(config_map("c"))
            live = json.loads(next(lines))
            assert (live["type"], live["object"]["metadata"]["name"]) == ("ADDED", "c")


def test_initial_events_need_not_older_than() -> None:
    with KubeEmulatorServer() as api:
        answer = httpx.get(
            f"{api.url}/api/v1/configmaps?watch=true&sendInitialEvents=true", timeout=10
        )
        assert answer.status_code == 422
        assert "sendInitialEvents is forbidden for watch unless" in answer.json()["message"]


KUBECTL = kubectl_path()


@pytest.mark.slow  # runs kubectl
@pytest.mark.skipif(KUBECTL is None, reason=missing_reason("kubectl"))
def test_kubectl_wait_sees_a_change() -> None:
    assert KUBECTL is not None
    with KubeEmulatorServer() as api:
        api.create(config_map("flag", value="no"))
        # kubectl keeps its discovery cache under $HOME/.kube (the working directory
        # without HOME): point it at the test's own directory.
        home = api.kubeconfig_path.parent
        env = {"KUBECONFIG": str(api.kubeconfig_path), "PATH": "/usr/bin:/bin", "HOME": str(home)}
        waiting = subprocess.Popen(
            [
                str(KUBECTL),
                "wait",
                "--for=jsonpath={.data.k}=yes",
                "configmap/flag",
                "--timeout=30s",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Once kubectl watches, the change reaches it.
            eventually(lambda: api.emulator._watches, timeout=20)
            api.apply(config_map("flag", value="yes"))
            out, err = waiting.communicate(timeout=30)
        finally:
            waiting.kill()
        assert waiting.returncode == 0, err
        assert "configmap/flag condition met" in out
