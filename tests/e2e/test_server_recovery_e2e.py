"""A model server whose engine dies is restarted and its Deployment serves again.

The real hearth-server runs a tiny random llama (loads in seconds) under the operator,
with the test-only fault hook ``HEARTH_SERVER_CRASH_ENGINE_AFTER_STEPS`` set: a request
that needs more engine steps than that kills the engine. The server then fails the
request, answers 503 on /health and exits non-zero; the process kubelet restarts the
container (the liveness probe would replace it too if it stayed up: see
test_operator_component.py) and the Deployment returns to READY.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from hearth_server.models.tiny import build_tiny_model_dir
from tests.harness.kubelet import ProcessKubelet
from tests.operator.conftest import emulated_cluster, local_process_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CRASH_AFTER_STEPS = 8


def test_server_with_a_dead_engine_is_restarted_and_serves_again(tmp_path: Path) -> None:
    tiny = build_tiny_model_dir(tmp_path / "tiny-llama")
    settings = local_process_settings(
        tmp_path / "pvc",
        resync_seconds=2.0,
        model_cache_path=str(tmp_path / "cache"),
        server_env={
            "HF_HUB_OFFLINE": "1",
            "HEARTH_SERVER_CRASH_ENGINE_AFTER_STEPS": str(CRASH_AFTER_STEPS),
        },
    )
    with (
        emulated_cluster(settings, tmp_path) as cluster,
        ProcessKubelet(
            cluster.api, log_dir=tmp_path / "pod-logs", backoff_max=1.0, probe_period_cap=1.0
        ) as kubelet,
        cluster.operator(),
        contextlib.ExitStack() as stack,
    ):
        cluster.apply(
            "apiVersion: hearth.dev/v1alpha1\nkind: Account\nmetadata: {name: acme}\nspec: {}\n"
        )
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(f"""
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {{name: tiny, namespace: acme}}
spec:
  kind: HF_BASE_MODEL
  source: {{uri: "file://{tiny}"}}
---
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {{name: d1, namespace: acme}}
spec: {{baseModel: tiny, acceleratorType: CPU, minReplicaCount: 1}}
""")
        try:
            cluster.wait_state("Deployment", "d1", "READY", timeout=300)
            pod = cluster.pods("d1")[0]
            name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
            client = stack.enter_context(
                httpx.Client(
                    base_url=f"http://{ip}:8000",
                    headers={"Authorization": f"Bearer {cluster.api_key('d1')}"},
                    timeout=60,
                )
            )

            def complete(max_tokens: int) -> httpx.Response:
                return client.post(
                    "/v1/completions",
                    json={
                        "model": "accounts/acme/models/tiny",
                        "prompt": "Count:",
                        "max_tokens": max_tokens,
                        "ignore_eos": True,
                        "temperature": 0,
                    },
                )

            assert complete(2).status_code == 200  # fewer steps than the fault needs
            # This one outlives the engine: it gets an error, not a hang.
            dying = complete(4 * CRASH_AFTER_STEPS)
            assert dying.status_code >= 500, dying.text

            def restarted(p: dict) -> bool:
                statuses = p["status"].get("containerStatuses") or [{}]
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions") or []
                )
                return statuses[0].get("restartCount", 0) >= 1 and ready

            again = cluster.wait("Pod", name, restarted, timeout=180)
            assert again["metadata"]["uid"] == pod["metadata"]["uid"]  # restarted in place
            last = again["status"]["containerStatuses"][0]["lastState"]["terminated"]
            assert last["exitCode"] != 0
            cluster.wait(
                "Deployment",
                "d1",
                lambda d: (
                    d["status"]["state"] == "READY"
                    and d["status"]["replicaStats"]["readyReplicaCount"] == 1
                ),
                timeout=120,
            )
            served = complete(2)
            assert served.status_code == 200, served.text
            assert served.json()["choices"][0]["text"]
        except AssertionError:
            print(kubelet.dump_logs())
            raise
