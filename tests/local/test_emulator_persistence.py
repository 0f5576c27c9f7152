"""The emulated API server keeps its objects in a state file across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes
import pytest

from hearth.local.emulator import ApiError, KubeEmulatorServer
from tests.harness.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"

pytestmark = pytest.mark.timeout(60)

ACCOUNT = {
    "apiVersion": "hearth.dev/v1alpha1",
    "kind": "Account",
    "metadata": {"name": "acme"},
    "spec": {},
}


def config_map(name: str, **metadata: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "acme", **metadata},
        "data": {"k": name},
    }


def set_status(api: KubeEmulatorServer, obj: dict, status: dict) -> None:
    rtype = api.emulator.registry.find_kind(obj["apiVersion"], obj["kind"])
    assert rtype is not None
    meta = obj["metadata"]
    api.call(
        lambda: api.emulator.store.patch(
            rtype,
            meta.get("namespace"),
            meta["name"],
            {"status": status},
            "application/merge-patch+json",
            "status",
        )
    )


def test_objects_come_back_as_they_were(tmp_path: Path) -> None:
    state = tmp_path / "store.json"
    with KubeEmulatorServer(crds=[CRDS], state_file=state) as api:
        account = api.create(ACCOUNT)
        set_status(api, account, {"state": "READY"})
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
        kept = api.create(config_map("kept"))
    assert state.exists()

    with KubeEmulatorServer(crds=[CRDS], state_file=state) as api:
        again = api.get("hearth.dev/v1alpha1", "Account", "acme")
        assert again is not None
        assert again["metadata"]["uid"] == account["metadata"]["uid"]
        assert again["status"]["state"] == "READY", "the status is restored too"
        assert api.get("v1", "ConfigMap", "kept", "acme") == kept
        # New writes continue after the restored resourceVersions.
        made = api.create(config_map("new"))
        assert int(made["metadata"]["resourceVersion"]) > int(kept["metadata"]["resourceVersion"])
        # Clients list as usual, and the restored name is taken.
        with kubernetes.config.new_client_from_config(
            config_file=str(api.kubeconfig_path)
        ) as client:
            core = kubernetes.client.CoreV1Api(client)
            items = core.list_namespaced_config_map("acme").items
            names = {cm.metadata.name for cm in items if cm.metadata is not None}
            assert names == {"kept", "new"}
        with pytest.raises(ApiError) as exists:
            api.create(config_map("kept"))
        assert exists.value.code == 409


def test_pending_deletions_finish_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "store.json"
    with KubeEmulatorServer(state_file=state) as api:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
        owner = api.create(config_map("owner"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner"}
        api.create(config_map("child", ownerReferences=[{**ref, "uid": owner["metadata"]["uid"]}]))
        api.create(config_map("held", finalizers=["example.dev/hold"]))
        rtype = api.emulator.registry.find_kind("v1", "ConfigMap")
        assert rtype is not None
        api.call(lambda: api.emulator.store.delete(rtype, "acme", "held"))
    # The owner vanishes from the saved state, as if the server died right after removing it.
    saved = json.loads(state.read_text())
    saved["objects"] = [o for o in saved["objects"] if o["metadata"]["name"] != "owner"]
    state.write_text(json.dumps(saved))

    with KubeEmulatorServer(state_file=state) as api:
        held = api.get("v1", "ConfigMap", "held", "acme")
        assert held is not None and held["metadata"]["deletionTimestamp"]
        # The garbage collector picks up where it was: the orphan goes.
        eventually(lambda: api.get("v1", "ConfigMap", "child", "acme") is None, timeout=10)
        api.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "held", "namespace": "acme", "finalizers": []},
            }
        )
        assert api.get("v1", "ConfigMap", "held", "acme") is None


def test_the_file_is_saved_while_running(tmp_path: Path) -> None:
    state = tmp_path / "store.json"
    with KubeEmulatorServer(state_file=state, save_interval=0.05) as api:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})

        def saved_names() -> set[str]:
            objects = json.loads(state.read_text())["objects"]
            return {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}

        eventually(lambda: "acme" in saved_names(), timeout=10)


def test_an_unreadable_state_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "store.json"
    state.write_text("{not json")
    with pytest.raises(RuntimeError) as failed:
        KubeEmulatorServer(state_file=state).start()
    cause = failed.value.__cause__
    assert cause is not None and f"cannot load the emulator's objects from {state}" in str(cause)
