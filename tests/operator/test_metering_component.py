"""GPU-seconds in the real operator (kopf) against the emulated API server, with pods run
by the process kubelet (``stub_server.py``) and the usage ledger in a SQLite file.

Every bound below comes from timestamps: the pods' own PodScheduled times and moments the
test noted before and after what it did. No test sleeps: each waits for what it expects.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hearth.ledger import AcceleratorSeconds, UsageRecord, open_ledger
from hearth_operator.planning.metering import scheduled_at
from hearth_operator.settings import Settings
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import STUB, Cluster, emulated_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ACCOUNT = """
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec: {}
"""
MANIFESTS = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: smollm2, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: builtin://smollm2-135m-instruct}
---
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: big-model, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: hf://org/big-model}
---
# Two GPUs per replica: vLLM's tensor parallelism (the stub server stands in for vLLM).
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: big, namespace: acme}
spec:
  baseModel: big-model
  servingEngine: VLLM
  acceleratorType: NVIDIA_H100_80GB
  acceleratorCount: 2
  minReplicaCount: 0
  maxReplicaCount: 2
  replicaCount: 2
---
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: small, namespace: acme}
spec:
  baseModel: smollm2
  acceleratorType: CPU
  minReplicaCount: 0
  maxReplicaCount: 1
  replicaCount: 1
"""
H100 = "NVIDIA_H100_80GB"


class LedgerReader:
    """The test's own connection to the ledger the operator writes."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, uids: list[str]) -> list[AcceleratorSeconds]:
        async def read() -> list[AcceleratorSeconds]:
            ledger = open_ledger(self.url, workers=1)
            try:
                return await ledger.accelerator_rows(uids)
            finally:
                await ledger.close()

        return asyncio.run(read())

    def seconds(self, uid: str) -> float:
        """Replica-seconds the ledger holds for one pod, over all hours."""
        return sum(r.replica_seconds for r in self.rows([uid]))


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[Cluster, LedgerReader]]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    settings = Settings(
        server_command=(sys.executable, str(STUB)),
        server_env={"STUB_RECORD_DIR": str(tmp_path)},
        vllm_command=(sys.executable, str(STUB), "serve"),
        vllm_env={"STUB_RECORD_DIR": str(tmp_path)},
        resync_seconds=1.0,
        autoscaler_enabled=False,  # replicas change only when the test scales
        ledger_url=url,
        metering_interval=0.3,
    )
    with (
        emulated_cluster(settings, tmp_path) as cluster,
        # Addresses of its own, apart from other test runs' pods on this machine.
        ProcessKubelet(
            cluster.api, log_dir=tmp_path / "pod-logs", backoff_max=1.0, first_ip="127.77.0.1"
        ),
    ):
        yield cluster, LedgerReader(url)


def running(cluster: Cluster, deployment: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.pods(deployment)
        if not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") == "Running"
    ]


def start_of(pod: dict[str, Any]) -> datetime:
    start = scheduled_at(pod)
    assert start is not None, pod.get("status")
    return start


def since(start: datetime, moment: datetime) -> float:
    return (moment - start).total_seconds()


def next_pass(ledger: LedgerReader, alive: list[str]) -> None:
    """Waits for a metering pass: every running replica's seconds grew."""
    counted = {uid: ledger.seconds(uid) for uid in alive}
    eventually(lambda: all(ledger.seconds(u) > counted[u] for u in alive), timeout=30)


def usage(obj: dict[str, Any] | None) -> dict[str, Any]:
    return ((obj or {}).get("status") or {}).get("acceleratorUsage") or {}


def test_replica_seconds_match_pod_lifetimes_across_scale_down_and_restart(metered):
    cluster, ledger = metered
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(MANIFESTS)
        big: list[dict[str, Any]] = eventually(
            lambda: running(cluster, "big") if len(running(cluster, "big")) == 2 else None,
            timeout=60,
        )
        [small] = eventually(lambda: running(cluster, "small"), timeout=60)
        pods = {p["metadata"]["uid"]: p for p in [*big, small]}
        starts = {uid: start_of(p) for uid, p in pods.items()}
        # Each replica's time is written while it runs (rows for every pod, a second in).
        eventually(lambda: all(ledger.seconds(uid) >= 1.0 for uid in pods), timeout=30)
        for uid in pods:
            assert ledger.seconds(uid) <= since(starts[uid], datetime.now(UTC))

        # Scale big down to one replica: the one that goes stops counting.
        before_scale = datetime.now(UTC)
        cluster.kube.patch_scale("Deployment", "big", "acme", 1)
        eventually(lambda: len(cluster.pods("big")) == 1, timeout=60)
        [kept] = cluster.pods("big")
        [gone] = {p["metadata"]["uid"] for p in big} - {kept["metadata"]["uid"]}
        alive = [uid for uid in pods if uid != gone]
        # Two passes after the pod left the API: the deletion was seen and written.
        next_pass(ledger, alive)
        next_pass(ledger, alive)
        final = ledger.seconds(gone)
        # The API's timestamps have whole seconds: its end may read up to 1 s early.
        assert since(starts[gone], before_scale) - 1.0 <= final
        assert final <= since(starts[gone], datetime.now(UTC))
        rows = ledger.rows([gone])
        assert {(r.accelerator_type, r.accelerator_count) for r in rows} == {(H100, 2)}
        assert all(r.accelerator_seconds == 2 * r.replica_seconds for r in rows)
        cpu_rows = ledger.rows([small["metadata"]["uid"]])
        assert {(r.accelerator_type, r.accelerator_count) for r in cpu_rows} == {("CPU", 0)}
        assert all(r.accelerator_seconds == r.replica_seconds for r in cpu_rows)
        assert {r.deployment for r in rows} == {"accounts/acme/deployments/big"}
        assert {r.account for r in [*rows, *cpu_rows]} == {"acme"}
        # Later passes leave it alone while the others keep counting.
        next_pass(ledger, alive)
        assert ledger.seconds(gone) == final

    # The operator stops; the pods keep running.
    with cluster.operator():
        # A new operator computes the same pods again from their timestamps: the time it
        # was down is counted (nothing lost) and nothing is counted twice.
        back = datetime.now(UTC)
        eventually(
            lambda: all(ledger.seconds(u) >= since(starts[u], back) for u in alive), timeout=30
        )
        for uid in alive:
            assert ledger.seconds(uid) <= since(starts[uid], datetime.now(UTC))
        assert ledger.seconds(gone) == final

        # Everything to zero: the sums are final, and the statuses show them.
        cluster.kube.patch_scale("Deployment", "big", "acme", 0)
        cluster.kube.patch_scale("Deployment", "small", "acme", 0)
        eventually(lambda: not cluster.pods("big") and not cluster.pods("small"), timeout=60)
        eventually(lambda: ledger.seconds(kept["metadata"]["uid"]) > 0, timeout=10)

        def settled() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
            big_rows = ledger.rows([u for u in pods if u != small["metadata"]["uid"]])
            small_seconds = ledger.seconds(small["metadata"]["uid"])
            gpu = round(sum(r.accelerator_seconds for r in big_rows))
            found = (
                usage(cluster.get("Deployment", "big")),
                usage(cluster.get("Deployment", "small")),
                usage(cluster.get("Account", "acme", None)),
            )
            wanted = (
                {H100: gpu},
                {"CPU": round(small_seconds)},
                {H100: gpu, "CPU": round(small_seconds)},
            )
            if tuple(f.get("acceleratorSeconds") for f in found) != wanted:
                return None
            return found

        big_usage, small_usage, account_usage = eventually(settled, timeout=30)
        assert big_usage["periodStart"] == datetime.now(UTC).strftime("%Y-%m-01T00:00:00Z")
        assert account_usage["replicaSeconds"] == {
            **big_usage["replicaSeconds"],
            **small_usage["replicaSeconds"],
        }
        assert big_usage["acceleratorSeconds"][H100] == pytest.approx(
            2 * big_usage["replicaSeconds"][H100], abs=1
        )


def test_account_status_sums_the_gateways_requests_of_this_month(metered):
    cluster, ledger = metered
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def record(request_id: str, account: str, when: datetime, prompt: int) -> UsageRecord:
        return UsageRecord(
            request_id=request_id,
            time=when,
            account=account,
            user="ann",
            key_id="k",
            model="accounts/acme/models/smollm2",
            deployment="accounts/acme/deployments/small",
            serverless=False,
            prompt_tokens=prompt,
            cached_tokens=1,
            completion_tokens=2 * prompt,
            status=200,
            latency_ms=5.0,
        )

    async def write(records: list[UsageRecord]) -> None:
        store = open_ledger(ledger.url, workers=1)
        try:
            for one in records:
                await store.record(one)
        finally:
            await store.close()

    asyncio.run(
        write(
            [
                record("r1", "acme", now, 10),
                record("r2", "acme", now, 20),
                record("r3", "other", now, 40),  # another account's bill
                record("r4", "acme", month_start - timedelta(seconds=1), 80),  # last month
            ]
        )
    )
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)

        def billed() -> dict[str, Any] | None:
            account = cluster.get("Account", "acme", namespace=None)
            found = ((account or {}).get("status") or {}).get("tokenUsage")
            return found if found and found.get("requests") else None

        tokens = eventually(billed, timeout=30)
        assert tokens == {
            "periodStart": month_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requests": 2,
            "promptTokens": 30,
            "cachedTokens": 2,
            "completionTokens": 60,
        }
        # A request recorded later shows up in a later pass.
        asyncio.run(write([record("r5", "acme", datetime.now(UTC), 5)]))
        eventually(lambda: (billed() or {}).get("requests") == 3, timeout=30)
