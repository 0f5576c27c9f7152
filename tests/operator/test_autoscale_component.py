"""The autoscaler in the real operator (kopf) against the emulated API server, with pods
run by the process kubelet.

Pods run ``stub_server.py``, whose ``/metrics`` exports the load the test writes into
``load.json``. The CRD refuses a scaleToZeroWindow under 5 minutes, so the operator's
``autoscaler_window_factor`` (0.01) shortens every window: the Deployment's 100 s
scaleUpWindow is 1 s here, its 200 s scaleDownWindow 2 s, its 5 m scaleToZeroWindow 3 s.
No test sleeps: each waits for the state it expects.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hearth_operator.controllers.autoscaler import Autoscaler, _Tracked, parse_metrics
from hearth_operator.planning.autoscale import Decision, start_memory
from hearth_operator.settings import Settings
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import STUB, Cluster, emulated_cluster

pytestmark = pytest.mark.timeout(180)

WINDOW_FACTOR = 0.01
ZERO_WINDOW = timedelta(minutes=5) * WINDOW_FACTOR

ACCOUNT = """
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec: {}
"""
MODEL = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: smollm2, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: builtin://smollm2-135m-instruct}
"""
DEPLOYMENT = """
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: d1, namespace: acme}
spec:
  baseModel: smollm2
  acceleratorType: CPU
  minReplicaCount: 0
  maxReplicaCount: 2
  replicaCount: 1
  autoscalingPolicy:
    scaleUpWindow: 100s
    scaleDownWindow: 200s
    scaleToZeroWindow: 5m
    loadTargets: {concurrent_requests: 4}
"""


@pytest.fixture
def scaling(tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    records = tmp_path / "records"
    records.mkdir()
    settings = Settings(
        server_command=(sys.executable, str(STUB)),
        server_env={"STUB_RECORD_DIR": str(records)},
        resync_seconds=1.0,
        autoscaler_interval=0.2,
        autoscaler_window_factor=WINDOW_FACTOR,
    )
    with (
        emulated_cluster(settings, records) as cluster,
        ProcessKubelet(
            cluster.api, log_dir=tmp_path / "pod-logs", backoff_max=1.0, probe_period_cap=0.2
        ),
    ):
        yield cluster, records


def setup(cluster: Cluster) -> None:
    cluster.apply(ACCOUNT)
    cluster.wait_state("Account", "acme", "READY", namespace=None)
    cluster.apply(MODEL)
    cluster.apply(DEPLOYMENT)


def set_load(records: Path, **load: float | bool) -> None:
    path = records / "load.json"
    path.with_suffix(".tmp").write_text(json.dumps(load))
    path.with_suffix(".tmp").replace(path)  # atomic: a scrape never reads half a file


def ready_pods(cluster: Cluster) -> int:
    return sum(
        1
        for p in cluster.pods("d1")
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions", [])
        )
    )


def events(cluster: Cluster, reason: str) -> list[dict]:
    return [
        e
        for e in cluster.kube.list("Event", "acme")
        if e["involvedObject"]["name"] == "d1" and e["reason"] == reason
    ]


def autoscaling_condition(obj: dict) -> Any:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Autoscaling"),
        None,
    )


def replica_count(cluster: Cluster) -> Any:
    deployment = cluster.get("Deployment", "d1")
    assert deployment is not None
    return deployment["spec"].get("replicaCount")


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.mark.slow
def test_load_adds_a_replica_idle_removes_all_and_a_raise_from_zero_is_kept(scaling):
    cluster, records = scaling
    set_load(records, running=0)
    with cluster.operator():
        setup(cluster)
        cluster.wait("Deployment", "d1", lambda d: ready_pods(cluster) == 1, timeout=60)

        # 6 requests on one replica, target 4 per replica: 2 replicas once it lasted 1 s.
        set_load(records, running=6)
        scaled = cluster.wait(
            "Deployment", "d1", lambda d: d["spec"].get("replicaCount") == 2, timeout=30
        )
        assert scaled["status"]["autoscaling"]["loadTargets"] == {"concurrent_requests": 4.0}
        [up] = eventually(lambda: events(cluster, "ScaledUp"))  # posted after the write
        assert "1 -> 2" in up["message"] and "concurrent_requests 6.00/4" in up["message"]
        assert "asks for 2 replicas" in up["message"]
        cluster.wait("Deployment", "d1", lambda d: ready_pods(cluster) == 2, timeout=30)
        # Each of the two reports 6: 12 asks for 3, one more than maxReplicaCount.
        at_max = cluster.wait(
            "Deployment",
            "d1",
            lambda d: (autoscaling_condition(d) or {}).get("reason") == "AtMaximum",
            timeout=30,
        )
        assert at_max["status"]["autoscaling"]["currentLoad"]["concurrent_requests"] == 6.0
        assert at_max["status"]["autoscaling"]["recommendedReplicaCount"] == 3
        assert at_max["status"]["lastScaleTime"]

        # Idle: down (2 s window) and to zero (3 s with no request): every replica goes.
        set_load(records, running=0)
        cluster.wait("Deployment", "d1", lambda d: d["spec"].get("replicaCount") == 0, timeout=60)
        [zero] = eventually(lambda: events(cluster, "ScaledToZero"))
        assert "-> 0: no request for" in zero["message"]
        cluster.wait("Deployment", "d1", lambda d: not cluster.pods("d1"), timeout=30)
        at_zero = cluster.wait(
            "Deployment",
            "d1",
            lambda d: (autoscaling_condition(d) or {}).get("reason") == "AtZero",
            timeout=10,
        )
        assert at_zero["status"]["replicaCount"] == 0

        # The gateway raises it for a held request (scale subresource, as it does): the
        # raise counts as a request, so the replica is kept a whole scaleToZeroWindow
        # (the planner tables show it counts from when the replica was ready).
        raised = datetime.now(UTC)
        cluster.kube.patch_scale("Deployment", "d1", "acme", 1)
        cluster.wait("Deployment", "d1", lambda d: ready_pods(cluster) == 1, timeout=60)
        cluster.wait("Deployment", "d1", lambda d: d["spec"].get("replicaCount") == 0, timeout=60)

        def two_zero_events() -> list[dict] | None:
            found = events(cluster, "ScaledToZero")
            return found if len(found) == 2 else None

        again = max(eventually(two_zero_events), key=lambda e: e["lastTimestamp"])
        # Not before a whole window after the raise (event times are cut to whole seconds).
        assert stamp(again["lastTimestamp"]) + timedelta(seconds=1) >= raised + ZERO_WINDOW


@pytest.mark.slow
def test_a_replica_without_metrics_holds_steady_and_says_so(scaling):
    cluster, records = scaling
    set_load(records, fail=True)  # /metrics answers 500
    with cluster.operator():
        setup(cluster)
        held = cluster.wait(
            "Deployment",
            "d1",
            lambda d: (autoscaling_condition(d) or {}).get("reason") == "MetricsMissing",
            timeout=60,
        )
        condition = autoscaling_condition(held)
        assert condition["status"] == "False"
        assert "no /metrics from d1-" in condition["message"]
        assert "holding at 1 replica" in condition["message"]
        assert held["spec"]["replicaCount"] == 1
        # Metrics back, still idle: now it goes to zero.
        set_load(records, running=0)
        cluster.wait("Deployment", "d1", lambda d: d["spec"].get("replicaCount") == 0, timeout=60)


def test_parse_metrics_reads_what_hearth_server_exports():
    # The real server's Metrics class, without a model: the names must match.
    from prometheus_client import generate_latest

    from hearth_server.api.metrics import Metrics

    metrics = Metrics("accounts/acme/models/smollm2")
    metrics.add_engine_gauges(
        lambda: {
            "num_requests_running": 3.0,
            "num_requests_waiting": 2.0,
            "kv_cache_usage_perc": 0.5,
        },
        lambda: [],
    )
    metrics.on_finished(prompt_tokens=10, generation_tokens=7, reason="stop")
    metrics.on_finished(prompt_tokens=10, generation_tokens=5, reason="length")
    now = datetime(2026, 11, 25, tzinfo=UTC)
    scrape = parse_metrics(generate_latest(metrics.registry).decode(), now)
    assert scrape is not None
    assert (scrape.running, scrape.waiting, scrape.kv_cache_usage) == (3.0, 2.0, 0.5)
    assert (scrape.generation_tokens, scrape.requests_finished) == (12.0, 2.0)
    # A server that does not export its load (no engine yet) is not "idle".
    assert parse_metrics("# nothing here\n", now) is None


@pytest.mark.slow
def test_a_decision_taken_before_someone_else_scaled_is_dropped(tmp_path):
    # The gateway (or a user) writes the scale between the autoscaler's list and its
    # write: the stale decision must not overwrite that.
    settings = Settings(server_command=(sys.executable, str(STUB)))
    with emulated_cluster(settings, tmp_path) as cluster:
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
        cluster.apply(DEPLOYMENT)
        scaler = Autoscaler(cluster.context())
        deployments, pods = scaler._list()
        plan = scaler._plan(deployments[0], pods)
        assert plan.replicas == 1
        now = datetime.now(UTC)
        scaler.tracked[("acme", "d1")] = _Tracked(start_memory(now, 1, None))
        stale = Decision(0, "ScaledToZero", "1 -> 0: decided from the listed object")
        cluster.kube.patch_scale("Deployment", "d1", "acme", 2)  # meanwhile
        assert not scaler._apply_one(plan, stale, now)
        assert replica_count(cluster) == 2
        assert events(cluster, "ScaledToZero") == []
        # Decided again from what is there now, the write goes through.
        deployments, pods = scaler._list()
        plan = scaler._plan(deployments[0], pods)
        fresh = Decision(1, "ScaledDown", "2 -> 1: decided from the current object")
        assert scaler._apply_one(plan, fresh, now)
        assert replica_count(cluster) == 1
