"""To zero and back: the autoscaler removes an idle Deployment's last replica, and the next
request through the real gateway brings one back and is answered.

The real operator (autoscaler and GPU-seconds metering on), the real gateway process and
real hearth-server pods (a tiny random Llama) run against the emulated API server. The
CRD refuses a scaleToZeroWindow under 5 minutes, so the operator's
``autoscaler_window_factor`` (0.01) makes the Deployment's 5m window 3 s. The gateway and
the operator write one ledger (a SQLite file): the request's usage record and the
replicas' seconds land side by side.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hearth.ledger import open_ledger
from tests.gateway.component import gateway_process, read_key
from tests.gateway.test_gateway_component import (
    SCALE_FROM_ZERO,
    api_key,
    base_dm_or_none,
    model,
    user,
)
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import emulated_cluster, local_process_settings

pytest.importorskip("torch")
from hearth_server.models.tiny import build_tiny_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LAZY = """
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: lazy, namespace: acme}
spec:
  baseModel: tiny
  acceleratorType: CPU
  minReplicaCount: 0
  replicaCount: 1
  autoscalingPolicy: {scaleToZeroWindow: 5m}
"""


def test_idle_to_zero_then_a_request_through_the_gateway_brings_a_replica_back(
    tmp_path: Path,
) -> None:
    build_tiny_model_dir(tmp_path / "pvc" / "artifacts" / "tiny")
    ledger_path = tmp_path / "ledger.sqlite3"
    settings = local_process_settings(
        tmp_path / "pvc",
        resync_seconds=1.0,
        autoscaler_interval=0.2,
        autoscaler_window_factor=0.01,
        ledger_url=f"sqlite:///{ledger_path}",
        metering_interval=0.5,
    )
    with (
        emulated_cluster(settings, tmp_path) as cluster,
        # Addresses of its own: a server of another test run on this machine, at the
        # default 127.0.1.x, can never answer for this one's pods.
        ProcessKubelet(
            cluster.api, log_dir=tmp_path / "pod-logs", backoff_max=1.0, first_ip="127.78.0.1"
        ),
        cluster.operator(),
    ):
        cluster.apply(
            "apiVersion: hearth.dev/v1alpha1\nkind: Account\nmetadata: {name: acme}\nspec: {}"
        )
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(
            "---".join(
                [
                    user("acme", "ann", "inference-user"),
                    api_key("acme", "ann-key", "ann"),
                    model("acme", "tiny", "pvc://artifacts/tiny"),
                    LAZY,
                ]
            )
        )
        key = read_key(cluster, "acme", "ann-key")
        cluster.wait_state("Deployment", "lazy", "READY", timeout=180)
        [first] = cluster.pods("lazy")

        with gateway_process(cluster, tmp_path, *SCALE_FROM_ZERO) as (url, ledger, _):
            assert ledger == ledger_path  # the one the operator meters into
            # Idle for the (shortened) scaleToZeroWindow: the autoscaler removes it.
            cluster.wait("Deployment", "lazy", lambda d: d["spec"]["replicaCount"] == 0)
            eventually(lambda: not cluster.pods("lazy"), timeout=60)
            zero = [
                e
                for e in cluster.kube.list("Event", "acme")
                if e["involvedObject"]["name"] == "lazy" and e["reason"] == "ScaledToZero"
            ]
            assert zero and "-> 0: no request for" in zero[0]["message"]
            eventually(lambda: base_dm_or_none(cluster, "acme", "lazy"), timeout=30)

            # The next request is held, the gateway raises the scale, a replica comes
            # back, and the request is answered.
            asked = datetime.now(UTC)
            reply = httpx.post(
                f"{url}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={
                    "model": "acme/tiny#acme/lazy",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 4,
                },
                timeout=180,
            )
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-hearth-deployment"] == "accounts/acme/deployments/lazy"
            assert reply.json()["choices"][0]["message"]["role"] == "assistant"
            [second] = cluster.pods("lazy")
            assert second["metadata"]["uid"] != first["metadata"]["uid"]
            lazy = cluster.get("Deployment", "lazy")
            assert lazy is not None and lazy["spec"]["replicaCount"] == 1

            # One ledger: the gateway's usage record and the operator's replica seconds.
            uids = [first["metadata"]["uid"], second["metadata"]["uid"]]

            async def read() -> tuple[list, list]:
                ledger = open_ledger(f"sqlite:///{ledger_path}", workers=1)
                try:
                    window = (asked - timedelta(minutes=1), datetime.now(UTC) + timedelta(1))
                    return (
                        await ledger.records("acme", *window),
                        await ledger.accelerator_rows(uids),
                    )
                finally:
                    await ledger.close()

            def both() -> tuple[list, list] | None:
                records, rows = asyncio.run(read())
                return (
                    (records, rows) if records and {r.pod_uid for r in rows} == set(uids) else None
                )

            records, rows = eventually(both, timeout=30)
            assert [r.deployment for r in records] == ["accounts/acme/deployments/lazy"]
            assert records[0].status == 200 and not records[0].serverless
            assert {(r.accelerator_type, r.deployment) for r in rows} == {
                ("CPU", "accounts/acme/deployments/lazy")
            }
