"""Contract tests: the official ``fireworks-ai`` SDK, unmodified, against the real gateway
(HTTPS, so the SDK's upload helper accepts its URLs) in front of the real operator and
real hearth-server pods on the emulated API.

One stack for the module, built like ``test_gateway_component``'s: users and their first
keys are applied as YAML (as an installer would), everything else goes through the SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import fireworks
import httpx
import openai
import pytest
from fireworks import Fireworks
from fireworks.lib.dataset_upload import upload_dataset_shards

from hearth.validation import validate
from hearth_gateway.control.constants import ANNOTATION_CREATED_BY
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import Cluster, emulated_cluster, local_process_settings

pytest.importorskip("torch")
from hearth_server.models.tiny import build_tiny_model_dir
from tests.gateway.component import free_port, read_key
from tests.gateway.test_gateway_component import api_key, model, user
from tests.server.conftest import make_adapter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROLES = {"ada": "admin", "uma": "user", "cody": "contributor", "ivy": "inference-user"}

ACCOUNT = "apiVersion: hearth.dev/v1alpha1\nkind: Account\nmetadata: {name: acme}\nspec: {}\n"
BOOTSTRAP = "---".join(
    [
        *(user("acme", name, role) for name, role in ROLES.items()),
        *(api_key("acme", f"{name}-key", name) for name in ROLES),
        model("acme", "tiny", "pvc://artifacts/tiny"),
    ]
)

#: Hearth's CPU "accelerator" (not in the SDK's enum, so sent as an extra field).
CPU = {"acceleratorType": "CPU"}

CHAT = "\n".join(
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
    )
    for i in range(4)
)


@dataclass
class Stack:
    cluster: Cluster
    url: str
    keys: dict[str, str]
    artifacts: Path
    #: Clients to close before the gateway stops (an idle TLS connection would hold its
    #: graceful shutdown until asyncio's SSL shutdown timeout).
    clients: list = field(default_factory=list)

    def sdk(self, who: str, key: str | None = None) -> Fireworks:
        client = Fireworks(
            api_key=key or self.keys[who], base_url=self.url, account_id="acme", max_retries=0
        )
        self.clients.append(client)
        return client


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("control")
    artifacts = tmp / "pvc" / "artifacts"
    tiny = build_tiny_model_dir(artifacts / "tiny")
    make_adapter(tiny, artifacts / "adapters" / "pirate", seed=5, rank=8, scale=2.0)
    cert, key = self_signed(tmp)
    settings = local_process_settings(tmp / "pvc", resync_seconds=1.0)
    previous_ca = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(cert)  # the SDKs' httpx clients trust the gateway
    with (
        emulated_cluster(settings, tmp) as cluster,
        ProcessKubelet(cluster.api, log_dir=tmp / "pod-logs", backoff_max=1.0) as kubelet,
        cluster.operator(),
    ):
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BOOTSTRAP)
        keys = {name: read_key(cluster, "acme", f"{name}-key") for name in ROLES}
        port = free_port()
        log = (tmp / "gateway.log").open("w")
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "hearth_gateway.cli"),
                *("--kubeconfig", str(cluster.api.kubeconfig_path)),
                *("--host", "127.0.0.1", "--port", str(port)),
                *("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)),
                *("--upload-dir", str(artifacts)),
            ],
            env={**os.environ, "HEARTH_GATEWAY_LEDGER_PATH": str(tmp / "ledger.sqlite3")},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"https://127.0.0.1:{port}"
        try:
            eventually(
                lambda: process.poll() is None and httpx.get(f"{url}/health").status_code == 200,
                timeout=60,
                message="the gateway never became healthy",
            )
            made = Stack(cluster, url, keys, artifacts)
            yield made
            for client in made.clients:
                client.close()
        except BaseException:
            print(kubelet.dump_logs()[-5000:])
            raise
        finally:
            process.terminate()
            process.wait(30)
            log.close()
            print((tmp / "gateway.log").read_text()[-5000:])
            if previous_ca is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = previous_ca


def refused(call, error: type[Exception]) -> bool:
    try:
        call()
    except error:
        return True
    return False


def state_of(get, state: str, timeout: float = 120):
    """``get()`` once its state is ``state``."""

    def reached():
        obj = get()
        return obj if obj.state == state else None

    return eventually(reached, timeout=timeout, message=f"state {state}")


def test_users_keys_and_a_deleted_key_refused(stack: Stack) -> None:
    admin = stack.sdk("ada")
    created = admin.users.create(user_id="sam", role="user", email="sam@acme.example")
    assert created.name == "accounts/acme/users/sam" and created.role == "user"
    assert state_of(lambda: admin.users.get("sam"), "READY").email == "sam@acme.example"
    # Pagination over more than one page, followed by the SDK itself.
    first = admin.users.list(page_size=2)
    assert len(first.users) == 2 and first.next_page_token
    names = [u.name for u in admin.users.list(page_size=2)]
    assert len(names) == len(set(names)) == 5
    assert [u.name for u in admin.users.list(filter='role = "contributor"')] == [
        "accounts/acme/users/cody"
    ]
    updated = admin.users.update("sam", role="contributor")
    assert updated.role == "contributor"
    with pytest.raises(fireworks.ConflictError):
        admin.users.create(user_id="sam", role="user", email="sam@acme.example")
    with pytest.raises(fireworks.PermissionDeniedError, match="only admins"):
        stack.sdk("uma").users.create(user_id="x", role="user", email="x@acme.example")
    with pytest.raises(fireworks.BadRequestError, match="pageToken"):
        admin.users.list(page_token="nonsense")

    # Keys: an admin for another user; a user for itself (written by the gateway).
    key = admin.api_keys.create(user_id="sam", api_key={"display_name": "ci"})
    assert key.key and key.key.startswith("hk_") and key.prefix == key.key[:12]
    own = stack.sdk("uma").api_keys.create(user_id="uma", api_key={})
    assert own.key and own.key_id
    listed = [k.key_id for k in admin.api_keys.list(user_id="sam")]
    assert listed == [key.key_id] and all(k.key is None for k in admin.api_keys.list(user_id="sam"))
    with pytest.raises(fireworks.PermissionDeniedError):
        stack.sdk("uma").api_keys.list(user_id="sam")
    sam = stack.sdk("sam", key.key)
    eventually(lambda: sam.users.get("sam").role == "contributor", timeout=20)
    assert key.key_id
    admin.api_keys.delete(user_id="sam", key_id=key.key_id)
    eventually(
        lambda: refused(lambda: sam.users.get("sam"), fireworks.AuthenticationError), timeout=20
    )
    reply = httpx.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {key.key}"})
    assert reply.status_code == 401, "a deleted key is refused by inference too"
    # The operator adopted the key issued here: the hash is the one the gateway wrote.
    obj = stack.cluster.get("ApiKey", own.key_id)
    assert obj is not None and obj["status"]["prefix"] == own.prefix


def test_models_deployments_scale_and_lora(stack: Stack) -> None:
    uma = stack.sdk("uma")
    # The YAML-applied model is listed by the SDK with the same fields.
    tiny = state_of(lambda: uma.models.get("tiny"), "READY")
    assert tiny.kind == "HF_BASE_MODEL" and tiny.name == "accounts/acme/models/tiny"
    # source.uri is Hearth's field for where the weights are (not in the SDK's types).
    pirate: Any = {
        "kind": "HF_PEFT_ADDON",
        "peft_details": {"base_model": "accounts/acme/models/tiny", "r": 8},
        "source": {"uri": "pvc://artifacts/adapters/pirate"},
        "display_name": "Pirate",
    }
    uma.models.create(model_id="pirate", model=pirate)
    state_of(lambda: uma.models.get("pirate"), "READY")
    ready = [m.name for m in uma.models.list(filter="state = READY")]
    assert ready == ["accounts/acme/models/pirate", "accounts/acme/models/tiny"]
    renamed = uma.models.update(
        "pirate", display_name="Arr", extra_query={"updateMask": "display_name"}
    )
    assert renamed.display_name == "Arr"
    with pytest.raises(fireworks.BadRequestError, match="peftDetails"):
        uma.models.create(
            model_id="broken",
            model=cast(Any, {"kind": "HF_PEFT_ADDON", "source": {"uri": "pvc://x/y"}}),
        )

    dep = uma.deployments.create(
        base_model="accounts/acme/models/tiny",
        deployment_id="smol",
        min_replica_count=1,
        max_replica_count=2,
        enable_addons=True,
        # Hearth's extensions: CPU serving and the adapters' largest rank.
        extra_body={"acceleratorType": "CPU", "maxPeftRank": 16},
    )
    assert dep.name == "accounts/acme/deployments/smol"
    state_of(lambda: uma.deployments.get("smol"), "READY", timeout=240)
    uma.deployments.scale("smol", replica_count=2)
    eventually(lambda: uma.deployments.get("smol").replica_count == 2, timeout=240)
    assert len(stack.cluster.pods("smol")) == 2

    lora = uma.lora.load(
        model="accounts/acme/models/pirate", deployment="accounts/acme/deployments/smol"
    )
    assert lora.name
    dm_id = lora.name.split("/")[-1]
    assert dm_id.startswith("pirate-")
    state_of(lambda: uma.lora.get(dm_id), "DEPLOYED", timeout=120)
    assert dm_id in [
        str(d.name).split("/")[-1]
        for d in uma.lora.list(filter="model = accounts/acme/models/pirate")
    ]
    client = openai.OpenAI(base_url=f"{stack.url}/inference/v1", api_key=stack.keys["ivy"])
    stack.clients.append(client)
    answer = client.chat.completions.create(
        model="accounts/acme/models/pirate#accounts/acme/deployments/smol",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
    )
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert uma.lora.update(dm_id, display_name="loaded").display_name == "loaded"
    uma.lora.unload(dm_id)
    eventually(lambda: stack.cluster.get("DeployedModel", dm_id) is None, timeout=60)
    uma.deployments.scale("smol", replica_count=1)
    eventually(lambda: uma.deployments.get("smol").replica_count == 1, timeout=120)

    # An object created by the SDK validates against the CRD as stored.
    stored = stack.cluster.get("Deployment", "smol")
    assert stored is not None
    assert stored["metadata"]["annotations"][ANNOTATION_CREATED_BY] == "uma"
    result = validate({k: v for k, v in stored.items() if k != "status"})
    assert result.ok, result.describe()


def test_role_table_through_the_sdk(stack: Stack) -> None:
    cody, uma, ivy = stack.sdk("cody"), stack.sdk("uma"), stack.sdk("ivy")
    cody.deployments.create(
        base_model="accounts/acme/models/tiny", deployment_id="codys", extra_body=CPU
    )
    uma.deployments.create(
        base_model="accounts/acme/models/tiny", deployment_id="umas", extra_body=CPU
    )
    # A contributor edits its own deployment (written by the gateway, RBAC cannot say "own")...
    assert (
        cody.deployments.update(
            "codys", base_model="accounts/acme/models/tiny", display_name="mine"
        ).display_name
        == "mine"
    )
    # ...but not someone else's.
    with pytest.raises(fireworks.PermissionDeniedError, match="only resources it created"):
        cody.deployments.update(
            "umas", base_model="accounts/acme/models/tiny", display_name="taken"
        )
    with pytest.raises(fireworks.PermissionDeniedError, match="only resources it created"):
        cody.deployments.delete("umas")
    # A user edits anyone's; an inference-user only reads.
    assert (
        uma.deployments.update(
            "codys", base_model="accounts/acme/models/tiny", display_name="ours"
        ).display_name
        == "ours"
    )
    assert {d.name for d in ivy.deployments.list()} >= {
        "accounts/acme/deployments/codys",
        "accounts/acme/deployments/umas",
    }
    with pytest.raises(fireworks.PermissionDeniedError, match="creating resources"):
        ivy.deployments.create(
            base_model="accounts/acme/models/tiny", deployment_id="ivys", extra_body=CPU
        )
    with pytest.raises(fireworks.PermissionDeniedError):
        ivy.deployments.delete("umas")
    cody.deployments.delete("codys")
    uma.deployments.delete("umas")
    eventually(
        lambda: refused(lambda: uma.deployments.get("umas"), fireworks.NotFoundError), timeout=30
    )
    with pytest.raises(fireworks.PermissionDeniedError, match="account 'beta'"):
        uma.deployments.list(account_id="beta")


def test_dataset_upload_validate_and_a_cancelled_job(stack: Stack, tmp_path: Path) -> None:
    uma = stack.sdk("uma")
    shard = tmp_path / "chat.jsonl"
    shard.write_text(CHAT + "\n")
    pending = uma.datasets.create(
        dataset_id="chat", dataset={"user_uploaded": {}, "example_count": "4"}
    )
    assert pending.state == "UPLOADING"
    upload_dataset_shards(uma, "chat", str(shard))
    ready = state_of(lambda: uma.datasets.get("chat"), "READY", timeout=120)
    assert ready.example_count == "4" and ready.user_uploaded is not None
    assert (stack.artifacts / "uploads/acme/datasets/chat/chat.jsonl").read_text() == CHAT + "\n"
    assert [d.name for d in uma.datasets.list()] == ["accounts/acme/datasets/chat"]

    job = uma.supervised_fine_tuning_jobs.create(
        dataset="accounts/acme/datasets/chat",
        base_model="accounts/acme/models/tiny",
        output_model="chatty",
        supervised_fine_tuning_job_id="teach",
        epochs=50,
        extra_body={"acceleratorType": "CPU"},
    )
    assert job.name == "accounts/acme/supervisedFineTuningJobs/teach"
    assert uma.supervised_fine_tuning_jobs.get("teach").dataset == "accounts/acme/datasets/chat"
    uma.supervised_fine_tuning_jobs.cancel("teach", body={})
    state_of(
        lambda: uma.supervised_fine_tuning_jobs.get("teach"), "JOB_STATE_CANCELLED", timeout=120
    )
    uma.supervised_fine_tuning_jobs.delete("teach")
    uma.datasets.delete("chat")
    eventually(
        lambda: refused(lambda: uma.datasets.get("chat"), fireworks.NotFoundError), timeout=30
    )


def test_yaml_objects_read_back_and_errors_name_the_field(stack: Stack) -> None:
    stack.cluster.apply(
        """
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: gitops, namespace: acme}
spec: {baseModel: tiny, acceleratorType: CPU, minReplicaCount: 0, displayName: From Git}
"""
    )
    ivy = stack.sdk("ivy")
    listed = {d.name: d for d in ivy.deployments.list(filter='display_name = "From Git"')}
    got = listed["accounts/acme/deployments/gitops"]
    assert got.base_model == "accounts/acme/models/tiny"
    assert got.min_replica_count == 0 and got.display_name == "From Git"
    assert got.create_time is not None and got.to_dict().get("createdBy") is None
    masked = ivy.deployments.get("gitops", read_mask="name,display_name")
    assert set(masked.to_dict()) == {"name", "displayName"}
    ordered = [str(d.name) for d in ivy.models.list(order_by="name desc")]
    assert ordered == sorted(ordered, reverse=True)

    headers = {"authorization": f"Bearer {stack.keys['uma']}"}
    reply = httpx.post(
        f"{stack.url}/v1/accounts/acme/deployments?deploymentId=bad",
        json={"baseModel": "tiny", "minReplicaCount": 2, "maxReplicaCount": 1},
        headers=headers,
    )
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == 3 and body["status"] == "INVALID_ARGUMENT"
    assert "maxReplicaCount" in body["message"]
    reply = httpx.get(f"{stack.url}/v1/accounts/acme/models?filter=kind%20%3E%201", headers=headers)
    assert reply.status_code == 400 and reply.json()["message"].startswith("filter:")
    reply = httpx.get(f"{stack.url}/v1/accounts/acme/models/nope", headers=headers)
    assert reply.status_code == 404 and reply.json()["status"] == "NOT_FOUND"
    assert httpx.get(f"{stack.url}/v1/accounts/acme").status_code == 401
