"""``supervisedFineTuningJobs:resume`` through the control-plane routes (ASGI) against the
emulated API server with the CRDs, no operator: the states it refuses, and for a failed
job the old trainer Job removed and the job created anew with the same spec and creator
(test_control_model_upload runs a cancelled job's resume end to end with the trainer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import kubernetes
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from hearth_gateway.cluster import load_configuration
from hearth_gateway.cluster.state import ClusterState
from hearth_gateway.config import GatewayConfig
from hearth_gateway.control import routes as control_routes
from hearth_gateway.control.constants import ANNOTATION_CREATED_BY
from hearth_gateway.control.kube import ControlKube
from hearth_gateway.control.plane import ControlPlane
from hearth_gateway.gateway import Gateway
from tests.gateway import factories as f
from tests.harness.emulator import KubeEmulatorServer
from tests.harness.emulator.hearth_rules import hearth_validator

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "hearth.dev", "v1alpha1"


@dataclass
class StateOnly:
    state: ClusterState


@dataclass
class Env:
    http: httpx.AsyncClient
    keys: dict[str, str]
    custom: Any
    batch: Any

    async def resume(self, job: str, who: str = "user") -> httpx.Response:
        return await self.http.post(
            f"/v1/accounts/acme/supervisedFineTuningJobs/{job}:resume",
            json={},
            headers={"authorization": f"Bearer {self.keys[who]}"},
        )

    def job(self, name: str, state: str, creator: str = "user", **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FineTuningJob",
            "metadata": {
                "name": name,
                "namespace": "acme",
                "annotations": {ANNOTATION_CREATED_BY: creator, "hearth.dev/last-handled": "x"},
            },
            "spec": {"dataset": "chat", "baseModel": "tiny", "epochs": 3, **spec},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, "acme", "finetuningjobs", body)
        return cast(
            dict[str, Any],
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, "acme", "finetuningjobs", name, {"status": {"state": state}}
            ),
        )

    def stored(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, "acme", "finetuningjobs", name
            ),
        )


@pytest.fixture(scope="module")
def api() -> Iterator[KubeEmulatorServer]:
    with KubeEmulatorServer(crds=[ROOT / "crds"], validators=[hearth_validator()]) as server:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(str(server.kubeconfig_path), client_configuration=config)
        core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
        core.create_namespace(cast(Any, {"metadata": {"name": "acme"}}))
        yield server


@pytest_asyncio.fixture
async def env(api: KubeEmulatorServer) -> AsyncIterator[Env]:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(api.kubeconfig_path), client_configuration=config)
    client = kubernetes.client.ApiClient(config)
    keys: dict[str, str] = {}
    objects = [f.account("acme")]
    for role in ("user", "contributor"):
        person = f.user("acme", role, role=role)
        person["spec"]["email"] = f"{role}@acme.example"
        key_obj, keys[role] = f.api_key("acme", f"key-{role}", role)
        objects += [person, key_obj]
    state = cast(Any, StateOnly(ClusterState.of(objects)))
    gateway = Gateway(GatewayConfig(), state, cast(Any, None), cast(Any, None))
    configuration, _ = load_configuration(str(api.kubeconfig_path), in_cluster=False)
    kube = ControlKube(configuration)
    app = Starlette(routes=list(control_routes))
    app.state.control = ControlPlane(gateway, kube, None)
    custom = kubernetes.client.CustomObjectsApi(client)
    batch = kubernetes.client.BatchV1Api(client)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield Env(http, keys, custom, batch)
    finally:
        await kube.close()
        listed: Any = custom.list_namespaced_custom_object(GROUP, VERSION, "acme", "finetuningjobs")
        for job in listed["items"]:
            name = job["metadata"]["name"]
            custom.delete_namespaced_custom_object(GROUP, VERSION, "acme", "finetuningjobs", name)


def trainer_job(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The batch/v1 Job the operator would have left behind a failed run."""
    meta = owner["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "acme",
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "FineTuningJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "trainer", "image": "hearth-trainer"}],
                }
            }
        },
    }


@pytest.mark.asyncio
async def test_a_failed_job_is_created_anew_after_its_trainer_job_is_gone(env: Env) -> None:
    failed = env.job("learn", "JOB_STATE_FAILED", learningRate=0.001)
    env.batch.create_namespaced_job("acme", trainer_job("learn-train", failed))
    reply = await env.resume("learn")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["name"] == "accounts/acme/supervisedFineTuningJobs/learn"
    assert body["createdBy"] == "user@acme.example"
    fresh = env.stored("learn")
    assert fresh["metadata"]["uid"] != failed["metadata"]["uid"], "a new object"
    assert fresh["spec"] == failed["spec"], "the same settings: the trainer's checkpoint fits"
    assert fresh["metadata"]["annotations"] == {ANNOTATION_CREATED_BY: "user"}
    assert (fresh.get("status") or {}).get("state") is None, "the operator starts it afresh"
    with pytest.raises(kubernetes.client.ApiException) as gone:
        env.batch.read_namespaced_job("learn-train", "acme")
    assert gone.value.status == 404


@pytest.mark.asyncio
async def test_resume_refuses_running_and_finished_jobs_and_others_jobs(env: Env) -> None:
    for name, state in (
        ("running", "JOB_STATE_RUNNING"),
        ("done", "JOB_STATE_COMPLETED"),
        ("pending", "JOB_STATE_PENDING"),
    ):
        env.job(name, state)
        reply = await env.resume(name)
        assert reply.status_code == 412, reply.text
        assert reply.json()["status"] == "FAILED_PRECONDITION"
        assert state in reply.json()["message"] and "failed or cancelled" in reply.json()["message"]
    cancelled = env.job("stopped", "JOB_STATE_CANCELLED", cancelled=True)
    denied = await env.resume("stopped", who="contributor")
    assert denied.status_code == 403 and "only resources it created" in denied.json()["message"]
    assert env.stored("stopped")["metadata"]["uid"] == cancelled["metadata"]["uid"]
    # Its own cancelled job a contributor may resume; the new one is not cancelled.
    env.job("mine", "JOB_STATE_CANCELLED", creator="contributor", cancelled=True)
    reply = await env.resume("mine", who="contributor")
    assert reply.status_code == 200, reply.text
    assert env.stored("mine")["spec"].get("cancelled", False) is False
    assert (await env.resume("nope")).status_code == 404
