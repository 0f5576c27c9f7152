# The kubernetes client (v37) types request bodies as its pydantic models and every response
# field as Optional (custom-object calls return `object`); it takes plain dicts at runtime and
# these tests read back fields they have just set, so those typing checks are noise here.
# mypy: disable-error-code="arg-type, union-attr, index, no-untyped-call, operator"
# mypy: disable-error-code="assignment, misc, type-var, attr-defined, return-value"
"""The process kubelet: pods as local processes with their own loopback IPs."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client import CoreV1Api

from tests.harness.emulator import KubeEmulatorServer
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually

pytestmark = pytest.mark.timeout(60)
# Tests that run containers as real processes are marked slow; fake_ready ones are not.


@pytest.fixture
def kubelet(api: KubeEmulatorServer, tmp_path: Any) -> Iterator[ProcessKubelet]:
    with ProcessKubelet(api, log_dir=tmp_path / "logs") as kubelet:
        try:
            yield kubelet
        finally:
            print(kubelet.dump_logs())  # shown by pytest only when the test fails


def pod(
    name: str, command: list[str], *, restart: str = "Always", **container: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": "python", "command": command, **container}],
        },
    }


def ready(core: CoreV1Api, name: str) -> Any:
    current = core.read_namespaced_pod(name, "default")
    conditions = {c.type: c.status for c in current.status.conditions or []}
    return current if conditions.get("Ready") == "True" else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_http_server_pod_becomes_ready_and_is_killed_on_delete(
    core: CoreV1Api, kubelet: ProcessKubelet, api: KubeEmulatorServer
) -> None:
    spec = pod(
        "web",
        [sys.executable, "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={
            "httpGet": {"path": "/", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
        env=[{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    )
    core.create_namespaced_pod("default", spec)
    running = eventually(lambda: ready(core, "web"), timeout=20, message=kubelet.dump_logs())
    assert running.status.phase == "Running"
    assert running.spec.node_name == "process-node"
    ip = running.status.pod_ip
    assert ip.startswith("127.") and ip != "127.0.0.1"
    status = running.status.container_statuses[0]
    assert status.ready and status.state.running is not None and status.restart_count == 0
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
        assert response.status == 200
    pid = int(status.container_id.removeprefix("process://"))
    assert alive(pid)
    eventually(lambda: "GET / HTTP" in core.read_namespaced_pod_log("web", "default"))

    core.delete_namespaced_pod("web", "default")
    eventually(lambda: api.get("v1", "Pod", "web", "default") is None)
    assert not alive(pid)


@pytest.mark.slow
def test_restart_policies(core: CoreV1Api, kubelet: ProcessKubelet) -> None:
    crash = [sys.executable, "-c", 'import sys; print("crashing"); sys.exit(3)']
    core.create_namespaced_pod("default", pod("crashy", crash, restart="Always"))
    core.create_namespaced_pod("default", pod("failing", crash, restart="Never"))
    core.create_namespaced_pod(
        "default", pod("done", [sys.executable, "-c", "pass"], restart="OnFailure")
    )

    def restarted_twice() -> Any:
        status = core.read_namespaced_pod("crashy", "default").status
        statuses = status.container_statuses or []
        return statuses and statuses[0].restart_count >= 2 and statuses[0]

    crashy = eventually(restarted_twice, timeout=20)
    assert crashy.last_state.terminated.exit_code == 3
    assert core.read_namespaced_pod("crashy", "default").status.phase == "Running"

    failed = eventually(
        lambda: (
            core.read_namespaced_pod("failing", "default").status.phase == "Failed"
            and core.read_namespaced_pod("failing", "default")
        )
    )
    terminated = failed.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3 and terminated.reason == "Error"
    assert failed.status.container_statuses[0].restart_count == 0
    eventually(lambda: core.read_namespaced_pod("done", "default").status.phase == "Succeeded")
    assert "crashing" in kubelet.read_log("default", "failing", "main")


@pytest.mark.slow
def test_environment_and_downward_api(core: CoreV1Api, kubelet: ProcessKubelet) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"level": "debug"}}
    )
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}
    )
    script = (
        'import os; print(" ".join(f"{k}={os.environ[k]}" for k in '
        '["POD_NAME", "POD_NS", "POD_IP", "LEVEL", "TOKEN", "GREETING"]))'
    )
    spec = pod(
        "envy",
        [sys.executable, "-c", script],
        restart="Never",
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}},
            },
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "GREETING", "value": "hello $(POD_NAME)"},
        ],
    )
    core.create_namespaced_pod("default", spec)
    done = eventually(
        lambda: (
            core.read_namespaced_pod("envy", "default").status.phase == "Succeeded"
            and core.read_namespaced_pod("envy", "default")
        )
    )
    log = kubelet.read_log("default", "envy", "main") or ""
    assert (
        f"POD_NAME=envy POD_NS=default POD_IP={done.status.pod_ip} LEVEL=debug "
        "TOKEN=s3cret GREETING=hello envy"
    ) in log


@pytest.mark.slow
def test_startup_probe_failure_restarts_container(core: CoreV1Api, kubelet: ProcessKubelet) -> None:
    # Nothing listens on the probed port: the startup probe fails and the container restarts.
    spec = pod(
        "slow",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        startupProbe={"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 1},
    )
    core.create_namespaced_pod("default", spec)

    def restarted() -> bool:
        statuses = core.read_namespaced_pod("slow", "default").status.container_statuses or []
        return bool(statuses) and statuses[0].restart_count >= 1 and not statuses[0].started

    eventually(restarted, timeout=20)


def test_fake_ready_mode(api: KubeEmulatorServer, core: CoreV1Api) -> None:
    with ProcessKubelet(api, fake_ready=True):
        core.create_namespaced_pod("default", pod("fake", ["/does/not/exist"]))
        fake = eventually(lambda: ready(core, "fake"))
        assert fake.status.phase == "Running" and fake.status.pod_ip.startswith("127.")
        core.delete_namespaced_pod("fake", "default")
        eventually(lambda: api.get("v1", "Pod", "fake", "default") is None)


def test_kubelet_client_is_plain_http(api: KubeEmulatorServer) -> None:
    """The kubelet needs nothing but the URL: it is a separate component."""
    with (
        ProcessKubelet(api.url, fake_ready=True) as kubelet,
        kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig_path)) as client,
    ):
        assert kubelet.url == api.url
        nodes = CoreV1Api(client).list_node().items
        assert [n.metadata.name for n in nodes] == ["process-node"]


@pytest.mark.slow
def test_job_runs_to_completion_and_retries(
    client: Any, core: CoreV1Api, kubelet: ProcessKubelet, api: KubeEmulatorServer
) -> None:
    batch = kubernetes.client.BatchV1Api(client)

    def job(name: str, code: int, backoff: int) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": backoff,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "python",
                                "command": [sys.executable, "-c", f"raise SystemExit({code})"],
                            }
                        ],
                    }
                },
            },
        }

    batch.create_namespaced_job("default", job("ok", 0, 0))
    batch.create_namespaced_job("default", job("bad", 1, 1))

    def condition(name: str) -> str | None:
        status = batch.read_namespaced_job_status(name, "default").status
        done = [c.type for c in status.conditions or [] if c.type in ("Complete", "Failed")]
        return done[0] if done else None

    assert eventually(lambda: condition("ok"), timeout=30) == "Complete"
    assert batch.read_namespaced_job("ok", "default").status.succeeded == 1
    assert eventually(lambda: condition("bad"), timeout=30) == "Failed"
    assert batch.read_namespaced_job("bad", "default").status.failed == 2  # 1 + backoffLimit
    pods = core.list_namespaced_pod("default", label_selector="job-name=bad").items
    assert len(pods) == 2 and all(p.metadata.owner_references[0].kind == "Job" for p in pods)
    batch.delete_namespaced_job("bad", "default", propagation_policy="Background")
    eventually(lambda: not api.list("v1", "Pod", "default", label_selector="job-name=bad"))


@pytest.mark.slow
def test_init_containers_env_from_and_liveness(
    core: CoreV1Api, kubelet: ProcessKubelet, tmp_path: Any
) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg"}, "data": {"MODE": "fast"}}
    )
    marker = tmp_path / "initialized"
    spec = pod(
        "staged",
        [
            sys.executable,
            "-c",
            'import os, time; print("mode", os.environ["APP_MODE"], flush=True); time.sleep(60)',
        ],
        envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "APP_"}],
        # Alive only while the marker exists: removing it makes the liveness probe fail.
        livenessProbe={
            "exec": {"command": ["test", "-f", str(marker)]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    )
    spec["spec"]["initContainers"] = [
        {
            "name": "init",
            "image": "python",
            "command": [sys.executable, "-c", f'open({str(marker)!r}, "w").close()'],
        }
    ]
    core.create_namespaced_pod("default", spec)
    running = eventually(lambda: ready(core, "staged"), timeout=20)
    init_status = running.status.init_container_statuses[0]
    assert init_status.state.terminated.exit_code == 0
    eventually(lambda: "mode fast" in (kubelet.read_log("default", "staged", "main") or ""))
    marker.unlink()

    def restarted() -> bool:
        statuses = core.read_namespaced_pod("staged", "default").status.container_statuses
        return statuses[0].restart_count >= 1

    eventually(restarted, timeout=20)


@pytest.mark.slow
def test_force_deletion_kills_at_once(
    core: CoreV1Api, kubelet: ProcessKubelet, api: KubeEmulatorServer
) -> None:
    # Ignores SIGTERM: only the SIGKILL of a force deletion (grace 0) stops it.
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        'print("up", flush=True); time.sleep(60)'
    )
    core.create_namespaced_pod("default", pod("stubborn", [sys.executable, "-c", script]))
    running = eventually(lambda: ready(core, "stubborn"), timeout=20)
    pid = int(running.status.container_statuses[0].container_id.removeprefix("process://"))
    core.delete_namespaced_pod("stubborn", "default", grace_period_seconds=0)
    assert api.get("v1", "Pod", "stubborn", "default") is None
    eventually(lambda: not alive(pid), timeout=10)


@pytest.mark.slow
def test_image_entrypoints_come_from_image_commands(
    api: KubeEmulatorServer, core: CoreV1Api, tmp_path: Any
) -> None:
    images = {
        "registry.example/tools/echo": [
            sys.executable,
            "-c",
            'import sys; print("args", *sys.argv[1:])',
        ]
    }
    with ProcessKubelet(api, log_dir=tmp_path, image_commands=images) as kubelet:
        spec = pod("echo", [], restart="Never", args=["one", "two"])
        spec["spec"]["containers"][0].pop("command")
        spec["spec"]["containers"][0]["image"] = "registry.example/tools/echo:1.0"
        core.create_namespaced_pod("default", spec)
        eventually(lambda: core.read_namespaced_pod("echo", "default").status.phase == "Succeeded")
        assert "args one two" in (kubelet.read_log("default", "echo", "main") or "")
        core.create_namespaced_pod("default", pod("unknown", [], restart="Never"))

        def waiting_reason() -> str | None:
            statuses = core.read_namespaced_pod("unknown", "default").status.container_statuses
            return (
                statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None
            )

        eventually(lambda: waiting_reason() == "CreateContainerError")


@pytest.mark.slow
def test_stopping_the_kubelet_kills_everything(
    api: KubeEmulatorServer, core: CoreV1Api, tmp_path: Any
) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    with ProcessKubelet(api, log_dir=tmp_path):
        spec = pod("immortal", [sys.executable, "-c", script])
        spec["spec"]["terminationGracePeriodSeconds"] = 60
        core.create_namespaced_pod("default", spec)
        running = eventually(lambda: ready(core, "immortal"), timeout=20)
        pid = int(running.status.container_statuses[0].container_id.removeprefix("process://"))
        core.delete_namespaced_pod("immortal", "default")  # a 60 s grace period starts
    assert not alive(pid)
    # Like a node that went away: the pod object stays, still terminating.
    assert api.get("v1", "Pod", "immortal", "default")["metadata"]["deletionTimestamp"]


def test_node_selector_is_enforced_when_asked(api: KubeEmulatorServer, core: CoreV1Api) -> None:
    labels = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    with ProcessKubelet(api, fake_ready=True, node_labels=labels, enforce_node_selector=True):
        fits = pod("fits", ["true"])
        fits["spec"]["nodeSelector"] = dict(labels)
        stranded = pod("stranded", ["true"])
        stranded["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        core.create_namespaced_pod("default", fits)
        core.create_namespaced_pod("default", stranded)
        eventually(lambda: ready(core, "fits"))

        def unschedulable() -> bool:
            status = core.read_namespaced_pod("stranded", "default").status
            return any(
                c.type == "PodScheduled" and c.reason == "Unschedulable"
                for c in status.conditions or []
            )

        eventually(unschedulable)
        stuck = core.read_namespaced_pod("stranded", "default")
        assert stuck.status.phase == "Pending" and stuck.spec.node_name is None
