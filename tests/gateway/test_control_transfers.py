"""Model uploads, downloads and ``datasets:upload`` through the control-plane routes (ASGI)
against the emulated API server with Hearth's CRDs: real files, real signatures, the
official ``fireworks-ai`` SDK (async client) where it has a method; no operator, so the
objects are created but not reconciled (test_control_model_upload covers that part)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fireworks
import httpx
import pytest
import pytest_asyncio
from fireworks import AsyncFireworks
from starlette.applications import Starlette

from hearth_gateway.cluster import load_configuration
from hearth_gateway.cluster.state import ClusterState
from hearth_gateway.config import GatewayConfig
from hearth_gateway.control import routes as control_routes
from hearth_gateway.control.kube import ControlKube
from hearth_gateway.control.plane import ControlPlane
from hearth_gateway.control.uploads import UploadStore, hmac_hex
from hearth_gateway.gateway import Gateway
from tests.gateway import factories as f
from tests.harness.emulator import KubeEmulatorServer
from tests.harness.emulator.hearth_rules import hearth_validator

pytest.importorskip("torch")
from hearth_server.models.tiny import build_tiny_model_dir
from tests.server.conftest import make_adapter

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024 * 1024
CHAT = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'


@dataclass
class StateOnly:
    state: ClusterState


@dataclass
class Env:
    http: httpx.AsyncClient
    keys: dict[str, str]
    artifacts: Path
    api: KubeEmulatorServer
    store: UploadStore

    def headers(self, who: str = "user") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def call(self, method: str, path: str, who: str = "user", **kw: Any) -> httpx.Response:
        headers = {**self.headers(who), **kw.pop("headers", {})}
        return await self.http.request(method, f"/v1/accounts/acme/{path}", headers=headers, **kw)

    def sdk(self, who: str = "user") -> AsyncFireworks:
        return AsyncFireworks(
            api_key=self.keys[who],
            base_url="http://gateway",
            account_id="acme",
            http_client=self.http,
            max_retries=0,
        )

    def stored(self, plural: str, name: str) -> dict[str, Any] | None:
        import kubernetes

        try:
            return _get(_client(self.api), plural, name)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    tiny = build_tiny_model_dir(root / "tiny")
    return {
        "tiny": tiny,
        "adapter": make_adapter(tiny, root / "pirate", seed=3, rank=8),
        "adapter4": make_adapter(tiny, root / "parrot", seed=4, rank=4),
    }


@pytest.fixture(scope="module")
def api() -> Iterator[KubeEmulatorServer]:
    with KubeEmulatorServer(crds=[ROOT / "crds"], validators=[hearth_validator()]) as server:
        yield server


@pytest_asyncio.fixture
async def env(
    tmp_path: Path, api: KubeEmulatorServer, files: dict[str, Path]
) -> AsyncIterator[Env]:
    kube_client = _client(api)
    _ensure_namespace(kube_client, "acme")
    artifacts = tmp_path / "artifacts"
    (artifacts / "tiny").parent.mkdir(parents=True)
    os.symlink(files["tiny"], artifacts / "tiny")
    keys: dict[str, str] = {}
    objects = [f.account("acme"), f.account("globex")]
    for role in ("user", "contributor", "inference-user"):
        person = f.user("acme", role, role=role)
        person["spec"]["email"] = f"{role}@acme.example"
        key_obj, keys[role] = f.api_key("acme", f"key-{role}", role)
        objects += [person, key_obj]
    state = cast(Any, StateOnly(ClusterState.of(objects)))
    gateway = Gateway(GatewayConfig(), state, cast(Any, None), cast(Any, None))
    configuration, _ = load_configuration(str(api.kubeconfig_path), in_cluster=False)
    kube = ControlKube(configuration)
    store = UploadStore(str(artifacts), b"test-secret", LIMIT)
    app = Starlette(routes=list(control_routes))
    app.state.control = ControlPlane(gateway, kube, store)
    _apply_base_model(kube_client)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield Env(http, keys, artifacts, api, store)
    finally:
        await kube.close()
        _clean(kube_client)


def _client(api: KubeEmulatorServer) -> Any:
    import kubernetes

    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(api.kubeconfig_path), client_configuration=config)
    return kubernetes.client.ApiClient(config)


def _ensure_namespace(client: Any, name: str) -> None:
    import kubernetes

    core = kubernetes.client.CoreV1Api(client)
    try:
        core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise


def _custom(client: Any) -> Any:
    import kubernetes

    return kubernetes.client.CustomObjectsApi(client)


def _apply_base_model(client: Any) -> None:
    body = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "tiny", "namespace": "acme"},
        "spec": {"kind": "HF_BASE_MODEL", "source": {"uri": "pvc://artifacts/tiny"}},
    }
    _custom(client).create_namespaced_custom_object(
        "hearth.dev", "v1alpha1", "acme", "models", body
    )


def _clean(client: Any) -> None:
    custom = _custom(client)
    for plural in ("models", "datasets"):
        for obj in custom.list_namespaced_custom_object("hearth.dev", "v1alpha1", "acme", plural)[
            "items"
        ]:
            custom.delete_namespaced_custom_object(
                "hearth.dev", "v1alpha1", "acme", plural, obj["metadata"]["name"]
            )


def _get(client: Any, plural: str, name: str) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        _custom(client).get_namespaced_custom_object(
            "hearth.dev", "v1alpha1", "acme", plural, name
        ),
    )


def addon(rank: int = 8) -> dict[str, Any]:
    return {
        "modelId": "pirate",
        "model": {
            "kind": "HF_PEFT_ADDON",
            "peftDetails": {"baseModel": "accounts/acme/models/tiny", "r": rank},
        },
    }


async def put_files(env: Env, model: str, directory: Path, names: list[str]) -> dict[str, str]:
    sizes = {name: str((directory / name).stat().st_size) for name in names}
    reply = await env.call(
        "POST", f"models/{model}:getUploadEndpoint", json={"filenameToSize": sizes}
    )
    assert reply.status_code == 200, reply.text
    urls: dict[str, str] = reply.json()["filenameToSignedUrls"]
    for name, url in urls.items():
        put = await env.http.put(url, content=(directory / name).read_bytes())
        assert put.status_code == 200, put.text
    return urls


ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"]


@pytest.mark.asyncio
async def test_model_upload_checks_the_adapter_and_creates_the_model(
    env: Env, files: dict[str, Path]
) -> None:
    created = await env.call("POST", "models", json=addon())
    assert created.status_code == 200, created.text
    assert created.json()["state"] == "UPLOADING"
    listed = (await env.call("GET", "models", params={"filter": "state = UPLOADING"})).json()
    assert [m["name"] for m in listed["models"]] == ["accounts/acme/models/pirate"]
    assert (await env.call("POST", "models", json=addon())).status_code == 409
    # Updating or validating before the files came is a precondition failure.
    early = await env.call("GET", "models/pirate:validateUpload")
    assert early.status_code == 412 and "getUploadEndpoint" in early.json()["message"]
    patched = await env.call("PATCH", "models/pirate", json={"displayName": "x"})
    assert patched.status_code == 412
    # Only one of the two files: 412 naming the one missing.
    sizes = {n: str((files["adapter"] / n).stat().st_size) for n in ADAPTER_FILES}
    reply = await env.call(
        "POST", "models/pirate:getUploadEndpoint", json={"filenameToSize": sizes}
    )
    urls = reply.json()["filenameToSignedUrls"]
    config = (files["adapter"] / "adapter_config.json").read_bytes()
    assert (await env.http.put(urls["adapter_config.json"], content=config)).status_code == 200
    missing = await env.call("GET", "models/pirate:validateUpload")
    assert missing.status_code == 412
    assert "adapter_model.safetensors" in missing.json()["message"]
    # A contributor may not upload into a model someone else created.
    other = await env.call(
        "POST", "models/pirate:getUploadEndpoint", "contributor", json={"filenameToSize": sizes}
    )
    assert other.status_code == 403 and "created" in other.json()["message"]

    await put_files(env, "pirate", files["adapter"], ADAPTER_FILES)
    done = await env.call("GET", "models/pirate:validateUpload")
    assert done.status_code == 200, done.text
    assert done.json() == {"warnings": []}, "the base's config.json was readable: shapes checked"
    stored = env.stored("models", "pirate")
    assert stored is not None
    assert stored["spec"]["source"] == {"uri": "pvc://artifacts/uploads/acme/models/pirate"}
    assert stored["spec"]["peftDetails"]["r"] == 8
    kept = env.artifacts / "uploads/acme/models/pirate"
    assert sorted(p.name for p in kept.iterdir()) == ADAPTER_FILES, "no record, no partial file"
    for name in ADAPTER_FILES:
        assert (kept / name).read_bytes() == (files["adapter"] / name).read_bytes()
    assert (await env.call("GET", "models/pirate:validateUpload")).status_code == 200
    prepare = await env.call("POST", "models/pirate:prepare", json={"precision": "FP8"})
    assert prepare.status_code == 501 and "per deployment" in prepare.json()["message"]
    again = await env.call(
        "POST", "models/pirate:getUploadEndpoint", json={"filenameToSize": sizes}
    )
    assert again.status_code == 412 and "immutable" in again.json()["message"]


@pytest.mark.asyncio
async def test_model_upload_refuses_a_wrong_rank_pickles_and_changed_files(
    env: Env, files: dict[str, Path]
) -> None:
    # Rank 8 declared, a rank-4 adapter uploaded.
    assert (await env.call("POST", "models", json=addon(rank=8))).status_code == 200
    await put_files(env, "pirate", files["adapter4"], ADAPTER_FILES)
    wrong = await env.call("GET", "models/pirate:validateUpload")
    assert wrong.status_code == 400 and "peftDetails.r is 8" in wrong.json()["message"]
    assert env.stored("models", "pirate") is None
    # A file changed on the volume after its upload.
    await put_files(env, "pirate", files["adapter"], ADAPTER_FILES)
    target = env.artifacts / "uploads/acme/models/pirate/adapter_model.safetensors"
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    changed = await env.call("GET", "models/pirate:validateUpload")
    assert changed.status_code == 412 and "checksum" in changed.json()["message"]
    # Pickled weights are refused by name; a safetensors file that lies about its size too.
    weights = (files["adapter"] / "adapter_model.safetensors").read_bytes()
    work = env.artifacts.parent / "work"
    work.mkdir()
    (work / "adapter_config.json").write_bytes(
        (files["adapter"] / "adapter_config.json").read_bytes()
    )
    (work / "adapter_model.bin").write_bytes(b"not really a pickle")
    await put_files(env, "pirate", work, ["adapter_config.json", "adapter_model.bin"])
    pickled = await env.call("GET", "models/pirate:validateUpload")
    assert pickled.status_code == 400 and "adapter_model.bin" in pickled.json()["message"]
    (header_size,) = struct.unpack("<Q", weights[:8])
    (work / "adapter_model.safetensors").write_bytes(weights[: 8 + header_size + 10])
    await put_files(env, "pirate", work, ADAPTER_FILES)
    truncated = await env.call("GET", "models/pirate:validateUpload")
    assert truncated.status_code == 400 and "malformed" in truncated.json()["message"]
    # The rank fits but the matrices do not fit the base model.
    tensors = json.loads(weights[8 : 8 + header_size])
    first = next(n for n in tensors if ".lora_B." in n)
    tensors[first]["shape"] = [tensors[first]["shape"][0] + 1, tensors[first]["shape"][1]]
    header = json.dumps(tensors).encode()
    (work / "adapter_model.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + weights[8 + header_size :]
    )
    await put_files(env, "pirate", work, ADAPTER_FILES)
    misfit = await env.call("GET", "models/pirate:validateUpload")
    assert misfit.status_code == 400 and "does not fit the base model" in misfit.json()["message"]
    assert env.stored("models", "pirate") is None
    # Deleting the waiting model removes its files.
    assert (await env.call("DELETE", "models/pirate")).status_code == 200
    assert not (env.artifacts / "uploads/acme/models/pirate").exists()
    assert (await env.call("GET", "models/pirate")).status_code == 404


@pytest.mark.asyncio
async def test_downloads_are_signed_expiring_account_scoped_and_stay_inside(
    env: Env, files: dict[str, Path]
) -> None:
    # A fine-tuned adapter where the trainer leaves it, and a model naming it.
    adapter = env.artifacts / "fine-tuning/job1/adapter"
    adapter.mkdir(parents=True)
    for name in ADAPTER_FILES:
        (adapter / name).write_bytes((files["adapter"] / name).read_bytes())
    (adapter / ".partial").write_text("hidden entries are not listed")
    tuned = {
        "modelId": "tuned",
        "model": {
            "kind": "HF_PEFT_ADDON",
            "source": {"uri": "pvc://artifacts/fine-tuning/job1/adapter"},
            "peftDetails": {"baseModel": "tiny", "r": 8},
        },
    }
    assert (await env.call("POST", "models", json=tuned)).status_code == 200
    sdk = env.sdk("inference-user")  # every role may read, so download
    answer = await sdk.models.get_download_endpoint("tuned")
    urls = answer.filename_to_signed_urls or {}
    assert sorted(urls) == ADAPTER_FILES
    for name, url in urls.items():
        got = await env.http.get(url)
        assert got.status_code == 200, got.text
        assert got.content == (adapter / name).read_bytes()

    signed = httpx.URL(urls["adapter_config.json"])
    expires = int(signed.params["expires"])
    forged = signed.copy_set_param("signature", "0" * 64)
    assert (await env.http.get(forged)).status_code == 403
    longer = signed.copy_set_param("expires", str(expires + 10))
    assert (await env.http.get(longer)).status_code == 403
    other_account = str(signed).replace("/accounts/acme/", "/accounts/globex/")
    assert (await env.http.get(other_account)).status_code == 403
    # Traversal: even correctly signed, a path out of the volume (or a symlink out of it)
    # names nothing.
    outside = env.artifacts.parent / "secret.txt"
    outside.write_text("not yours")
    os.symlink(outside, adapter / "link.txt")
    # (what is sent, what the server decodes and a forger would have signed)
    attempts = [
        ("%2e%2e/secret.txt", "../secret.txt"),
        (
            "fine-tuning/job1/adapter/%2E%2E/%2E%2E/%2E%2E/secret.txt",
            "fine-tuning/job1/adapter/../../../secret.txt",
        ),
        ("fine-tuning%2F..%2F..%2Fsecret.txt", "fine-tuning/../../secret.txt"),
        ("fine-tuning/job1/adapter/link.txt", "fine-tuning/job1/adapter/link.txt"),
        ("%2Fetc%2Fpasswd", "/etc/passwd"),
    ]
    for sent, decoded in attempts:
        good = hmac_hex(env.store.secret, "GET", "acme", decoded, str(expires))
        raw = f"/downloads/v1/accounts/acme/{sent}?expires={expires}&signature={good}"
        reply = await env.http.get(raw)
        assert reply.status_code == 404, (sent, reply.status_code)
        assert "not yours" not in reply.text
    listed = (await sdk.models.get_download_endpoint("tuned")).filename_to_signed_urls or {}
    assert "link.txt" not in listed

    # A model whose weights are elsewhere cannot be downloaded from here.
    with pytest.raises(fireworks.APIStatusError) as error:
        await sdk.models.get_download_endpoint("nope")
    assert error.value.status_code == 404
    hf = {
        "modelId": "hub",
        "model": {"kind": "HF_BASE_MODEL", "huggingFaceUrl": "https://huggingface.co/o/r"},
    }
    assert (await env.call("POST", "models", json=hf)).status_code == 200
    with pytest.raises(fireworks.APIStatusError) as error:
        await sdk.models.get_download_endpoint("hub")
    assert error.value.status_code == 412 and "hf://o/r" in str(error.value.message)


@pytest.mark.asyncio
async def test_dataset_multipart_upload_with_the_sdk_then_download(env: Env) -> None:
    sdk = env.sdk()
    await sdk.datasets.create(dataset_id="chat", dataset={"user_uploaded": {}})
    uploaded = await sdk.datasets.upload("chat", file=("chat.jsonl", CHAT * 3))
    assert uploaded.filename == "chat.jsonl" and uploaded.bytes == len(CHAT) * 3
    stored = env.stored("datasets", "chat")
    assert stored is not None
    assert stored["spec"]["source"] == {
        "uri": "pvc://artifacts/uploads/acme/datasets/chat/chat.jsonl"
    }
    path = env.artifacts / "uploads/acme/datasets/chat/chat.jsonl"
    assert path.read_bytes() == CHAT * 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["chat.jsonl"]
    # :validateUpload after :upload is harmless; a second :upload is refused.
    assert (await env.call("POST", "datasets/chat:validateUpload", json={})).status_code == 200
    with pytest.raises(fireworks.APIStatusError) as error:
        await sdk.datasets.upload("chat", file=("more.jsonl", CHAT))
    assert error.value.status_code == 412
    urls = (await sdk.datasets.get_download_endpoint("chat")).filename_to_signed_urls or {}
    assert list(urls) == ["chat.jsonl"]
    got = await env.http.get(urls["chat.jsonl"])
    assert got.content == CHAT * 3
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.asyncio
async def test_dataset_multipart_upload_limits_and_bad_forms(env: Env) -> None:
    env.store.max_bytes = 1000
    sdk = env.sdk()
    await sdk.datasets.create(dataset_id="big", dataset={"user_uploaded": {}})
    with pytest.raises(fireworks.APIStatusError) as error:
        await sdk.datasets.upload("big", file=("big.jsonl", b"x" * 5000))
    assert error.value.status_code == 413
    directory = env.artifacts / "uploads/acme/datasets/big"
    assert sorted(p.name for p in directory.iterdir()) == [".hearth-upload.json"]
    assert (await sdk.datasets.get("big")).state == "UPLOADING"
    not_form = await env.call(
        "POST",
        "datasets/big:upload",
        content=b"{}",
        headers={"content-type": "application/json", **env.headers()},
    )
    assert not_form.status_code == 400 and "multipart/form-data" in not_form.json()["message"]
    no_file = await env.call(
        "POST", "datasets/big:upload", data={"other": "x"}, files={"notfile": ("a.jsonl", b"1")}
    )
    assert no_file.status_code == 400 and "'file'" in no_file.json()["message"]
    bad_name = await env.call("POST", "datasets/big:upload", files={"file": (".hidden", CHAT)})
    assert bad_name.status_code == 400 and bad_name.json()["message"].startswith("file:")
    denied = await env.call(
        "POST", "datasets/big:upload", "inference-user", files={"file": ("a.jsonl", CHAT)}
    )
    assert denied.status_code == 403
    assert sorted(p.name for p in directory.iterdir()) == [".hearth-upload.json"]


@pytest.mark.asyncio
async def test_deployment_events_newest_first_for_that_deployment_only(env: Env) -> None:
    import kubernetes

    client = _client(env.api)
    custom, core = _custom(client), kubernetes.client.CoreV1Api(client)
    for name in ("smol", "other"):
        body = f.deployment("acme", name, "tiny")
        body["metadata"] = {"name": name, "namespace": "acme"}
        custom.create_namespaced_custom_object(
            "hearth.dev", "v1alpha1", "acme", "deployments", body
        )

    def event(name: str, about: str, reason: str, when: str, api_version: str) -> None:
        involved = {"apiVersion": api_version, "kind": "Deployment", "name": about}
        body = {
            "metadata": {"name": name, "namespace": "acme"},
            "involvedObject": {**involved, "namespace": "acme"},
            "reason": reason,
            "message": f"{reason} happened",
            "type": "Warning" if reason == "ServerFailing" else "Normal",
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 2,
        }
        core.create_namespaced_event("acme", cast(Any, body))

    event("e1", "smol", "Created", "2026-12-02T10:00:00Z", "hearth.dev/v1alpha1")
    event("e2", "smol", "ServerFailing", "2026-12-02T10:05:00Z", "hearth.dev/v1alpha1")
    event("e3", "other", "Created", "2026-12-02T10:06:00Z", "hearth.dev/v1alpha1")
    event("e4", "smol", "ScalingReplicaSet", "2026-12-02T10:07:00Z", "apps/v1")  # not ours
    try:
        for who in ("user", "inference-user"):  # every role may read deployments
            answer = await env.call("GET", "deployments/smol:events", who)
            assert answer.status_code == 200, answer.text
            events = answer.json()["events"]
            assert [e["reason"] for e in events] == ["ServerFailing", "Created"]
            assert events[0] == {
                "type": "Warning",
                "reason": "ServerFailing",
                "message": "ServerFailing happened",
                "count": 2,
                "firstTime": "2026-12-02T10:05:00Z",
                "lastTime": "2026-12-02T10:05:00Z",
            }
        missing = await env.call("GET", "deployments/nope:events")
        assert missing.status_code == 404, missing.text
    finally:
        for name in ("smol", "other"):
            custom.delete_namespaced_custom_object(
                "hearth.dev", "v1alpha1", "acme", "deployments", name
            )
        for name in ("e1", "e2", "e3", "e4"):
            core.delete_namespaced_event(name, "acme")
