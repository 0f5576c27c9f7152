"""The gateway's list+watch cache against the emulated API server (no operator).

Objects created before and after the cache starts are seen; Pods and Secrets are narrowed
to model servers and Deployment API tokens; while the API server is unreachable the
cache keeps what it had, and it catches up when the link comes back.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import kubernetes
import pytest

from hearth_gateway.cluster import ClusterCache, KubeClient
from tests.gateway.support import CuttableLink, meta, until
from tests.harness.emulator import KubeEmulatorServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def pod(name: str, deployment: str | None, *, server: bool = True) -> dict:
    labels = {"hearth.dev/deployment": deployment} if deployment else {}
    if server:
        labels["app.kubernetes.io/name"] = "hearth-server"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, "acme", labels=labels),
        "spec": {"containers": [{"name": "server", "image": "hearth-server"}]},
    }


def secret(name: str, labels: dict[str, str], **data: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(name, "acme", labels=labels),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_cache_lists_watches_narrows_and_survives_an_outage() -> None:
    with (
        KubeEmulatorServer(crds=[ROOT / "crds"]) as api,
        kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig_path)) as client,
    ):
        core = kubernetes.client.CoreV1Api(client)
        api.create(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "Account",
                "metadata": meta("acme"),
                "spec": {},
            }
        )
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("acme")})
        api.create(pod("smol-1", "smol"))
        api.create(pod("other", None, server=False))
        api.create(
            secret(
                "smol-api-key", {"hearth.dev/deployment": "smol"}, **{"api-key": "tok", "x": "y"}
            )
        )
        api.create(secret("unrelated", {}, password="secret"))
        host, port = api.url.removeprefix("http://").split(":")

        async def scenario() -> None:
            link = CuttableLink(host, int(port))
            await link.start()
            configuration = kubernetes.client.Configuration()
            configuration.host = link.url
            cache = ClusterCache(KubeClient(configuration), backoff_initial=0.05, backoff_max=0.2)
            await cache.start(sync_timeout=20)
            state = cache.state
            try:
                assert state.account("acme") is not None
                assert [p["metadata"]["name"] for p in state.pods_of("acme", "smol")] == ["smol-1"]
                assert len(state.pods) == 1, "only model-server pods are cached"
                token_secret = state.api_token_secret("acme", "smol")
                assert token_secret is not None
                assert set(token_secret["data"]) == {"api-key"}, "only the token is kept"
                assert len(state.secrets) == 1

                # A change after the list arrives through the watch.
                api.create(pod("smol-2", "smol"))
                await until(lambda: len(state.pods_of("acme", "smol")) == 2, "second pod")

                link.cut()
                await until(lambda: not cache.connected, "disconnected")
                # Still serving what it had.
                assert len(state.pods_of("acme", "smol")) == 2
                core.delete_namespaced_pod("smol-1", "acme", grace_period_seconds=0)
                api.create(pod("smol-3", "smol"))
                link.restore()
                await until(
                    lambda: (
                        {p["metadata"]["name"] for p in state.pods_of("acme", "smol")}
                        == {"smol-2", "smol-3"}
                    ),
                    "caught up after the outage",
                )
                await until(lambda: cache.connected, "reconnected")
            finally:
                await cache.stop()
                await link.stop()

        asyncio.run(scenario())
