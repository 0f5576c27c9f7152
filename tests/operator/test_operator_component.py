"""The real operator (kopf) against the emulated API server, pods run by the process kubelet.

Pods run ``stub_server.py`` (a test double of hearth-server that records adapter calls);
the end-to-end test runs the real server.
"""

from __future__ import annotations

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from prometheus_client import generate_latest

from tests.harness.waiting import eventually

pytestmark = pytest.mark.timeout(240)

ACCOUNT = """
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec:
  quota: {gpus: 2, deployments: 2}
"""
BASE = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: smollm2, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: builtin://smollm2-135m-instruct}
"""
ADDON = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: pirate, namespace: acme}
spec:
  kind: HF_PEFT_ADDON
  source: {uri: pvc://artifacts/adapters/pirate}
  peftDetails: {baseModel: smollm2, r: 8}
"""


def deployment(name="d1", **spec):
    body = {
        "baseModel": "smollm2",
        "acceleratorType": "CPU",
        "enableAddons": True,
        "minReplicaCount": 1,
        **spec,
    }
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": body,
    }


def ready(obj):
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (obj.get("status") or {}).get("conditions", [])
    )


def condition(obj, kind):
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def test_account_creates_its_namespace_and_guard_rails(cluster):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        account = cluster.wait_state("Account", "acme", "READY", namespace=None)
        assert account["status"]["namespace"] == "acme"
        namespace = cluster.get("Namespace", "acme", None)
        assert namespace["metadata"]["ownerReferences"][0]["uid"] == account["metadata"]["uid"]
        quota = cluster.get("ResourceQuota", "hearth-quota")
        assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
        assert quota["spec"]["hard"]["count/deployments.hearth.dev"] == "2"
        assert cluster.get("NetworkPolicy", "hearth-model-servers") is not None
        assert cluster.get("PersistentVolumeClaim", "artifacts") is not None
        # Quota edits follow.
        cluster.kube.merge_patch("Account", "acme", None, {"spec": {"quota": {"gpus": 4}}})
        cluster.wait(
            "ResourceQuota",
            "hearth-quota",
            lambda q: q["spec"]["hard"]["requests.nvidia.com/gpu"] == "4",
        )
        # Deleting the account removes everything it owns.
        cluster.kube.delete("Account", "acme")
        eventually(lambda: cluster.get("Namespace", "acme", None) is None, timeout=60)


def test_reserved_account_names_are_refused(cluster):
    with pytest.raises(ApiException) as refused:
        cluster.apply(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "Account",
                "metadata": {"name": "kube-stuff"},
                "spec": {},
            }
        )
    assert refused.value.status == 422
    assert "may not take a system namespace" in str(refused.value.body)
    # The operator's own namespace passes the CRD (it is configurable) but not the operator.
    with cluster.operator():
        cluster.apply(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "Account",
                "metadata": {"name": "hearth-ops"},
                "spec": {},
            }
        )
        cluster.settings = cluster.settings  # unchanged: hearth-system is the operator's
    # With the operator living in hearth-ops, that account is refused.
    cluster.settings = cluster.settings.with_overrides(namespace="hearth-ops")
    with cluster.operator():
        account = cluster.wait(
            "Account",
            "hearth-ops",
            lambda a: (a.get("status") or {}).get("conditions"),
            namespace=None,
        )
        assert condition(account, "Ready")["reason"] == "InvalidName"
        assert "reserved" in account["status"]["message"]


def test_user_role_binding_follows_role_changes_and_deletion(cluster):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply("""
apiVersion: hearth.dev/v1alpha1
kind: User
metadata: {name: alice, namespace: acme}
spec: {role: user, email: alice@acme.example}
---
apiVersion: hearth.dev/v1alpha1
kind: User
metadata: {name: bot, namespace: acme}
spec: {role: inference-user, serviceAccount: true}
""")
        binding = cluster.wait("RoleBinding", "hearth-user-alice", lambda b: True)
        assert binding["roleRef"]["name"] == "hearth-user"
        assert binding["subjects"][0] == {
            "kind": "User",
            "apiGroup": "rbac.authorization.k8s.io",
            "name": "alice@acme.example",
        }
        cluster.wait_state("User", "alice", "READY")
        assert cluster.wait("ServiceAccount", "bot", lambda s: True)
        bot = cluster.wait("RoleBinding", "hearth-user-bot", lambda b: True)
        assert bot["subjects"][0]["kind"] == "ServiceAccount"
        cluster.kube.merge_patch("User", "alice", "acme", {"spec": {"role": "admin"}})
        cluster.wait(
            "RoleBinding", "hearth-user-alice", lambda b: b["roleRef"]["name"] == "hearth-admin"
        )
        cluster.kube.delete("User", "alice", "acme")
        eventually(lambda: cluster.get("RoleBinding", "hearth-user-alice") is None, timeout=60)


def test_addon_waits_for_its_base_model(cluster):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(ADDON)
        addon = cluster.wait_state("Model", "pirate", "FAILED")
        assert condition(addon, "Ready")["reason"] == "BaseModelNotFound"
        assert (
            addon["status"]["message"] == "base model accounts/acme/models/smollm2 does not exist"
        )
        cluster.apply(BASE)
        cluster.wait_state("Model", "smollm2", "READY")
        cluster.wait_state("Model", "pirate", "READY")


def test_invalid_specs_are_refused_by_the_api(cluster):
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    with pytest.raises(ApiException) as refused:
        cluster.apply(deployment(minReplicaCount=3, maxReplicaCount=1))
    assert refused.value.status == 422
    assert "maxReplicaCount must be greater than or equal to minReplicaCount" in str(
        refused.value.body
    )
    with pytest.raises(ApiException) as refused:
        cluster.apply(ADDON.replace("r: 8", "r: 128"))
    assert "LoRA rank must be between 4 and 64" in str(refused.value.body)


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_deployment_runs_replicas_and_replaces_lost_ones(cluster, kubelet):
    with cluster.operator() as ctx:
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.apply(deployment(minReplicaCount=1, maxReplicaCount=3))
        dep = cluster.wait_state("Deployment", "d1", "READY")
        assert dep["status"]["replicaStats"]["readyReplicaCount"] == 1
        assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
        pods = cluster.pods("d1")
        assert len(pods) == 1
        assert pods[0]["metadata"]["ownerReferences"][0]["name"] == "d1"
        assert (
            cluster.get("Service", "d1-server")["spec"]["selector"]["hearth.dev/deployment"] == "d1"
        )
        # The base model was deployed on it, as Fireworks does, and is the model's default.
        dms = eventually(lambda: cluster.kube.list("DeployedModel", "acme"), timeout=10)
        assert dms[0]["spec"]["model"] == "smollm2"
        cluster.wait_state("DeployedModel", dms[0]["metadata"]["name"], "DEPLOYED")
        model = cluster.wait("Model", "smollm2", lambda m: m["status"].get("deployedModelRefs"))
        assert model["status"]["deployedModelRefs"][0]["default"] is True
        # kubectl scale, through the scale subresource.
        cluster.kube.merge_patch("Deployment", "d1", "acme", {"spec": {"replicaCount": 2}})
        cluster.wait(
            "Deployment", "d1", lambda d: d["status"]["replicaStats"]["readyReplicaCount"] == 2
        )
        metrics = generate_latest(ctx.metrics.registry).decode()
        assert 'hearth_operator_reconciles_total{kind="Deployment",result="ok"}' in metrics
        assert "hearth_operator_reconcile_duration_seconds_bucket" in metrics
        # A deleted replica is replaced.
        lost = cluster.pods("d1")[0]["metadata"]
        cluster.kube.delete("Pod", lost["name"], "acme")
        eventually(
            lambda: lost["uid"] not in {p["metadata"]["uid"] for p in cluster.pods("d1")},
            timeout=60,
        )
        cluster.wait(
            "Deployment", "d1", lambda d: d["status"]["replicaStats"]["readyReplicaCount"] == 2
        )


def test_quota_exceeded_is_reported_with_numbers(cluster):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.wait_state("Model", "smollm2", "READY")
        cluster.apply(
            deployment(acceleratorType="NVIDIA_H100_80GB", acceleratorCount=1, minReplicaCount=3)
        )
        dep = cluster.wait_state("Deployment", "d1", "FAILED")
        quota = condition(dep, "QuotaExceeded")
        assert quota["status"] == "True"
        assert quota["message"] == "needs 3 GPUs (3 replicas x 1), 2 of 2 left"
        assert cluster.pods("d1") == []


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_crashing_server_is_reported(cluster, kubelet):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE.replace("builtin://smollm2-135m-instruct", "hf://org/crash-model"))
        cluster.apply(deployment())
        dep = cluster.wait(
            "Deployment",
            "d1",
            lambda d: "exit code 1" in (d.get("status") or {}).get("message", ""),
        )
        assert dep["status"]["state"] == "FAILED"


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_rollout_on_spec_change_survives_an_operator_restart(cluster, kubelet):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.apply(deployment(minReplicaCount=2, maxReplicaCount=2))
        cluster.wait(
            "Deployment",
            "d1",
            lambda d: (
                d["status"].get("state") == "READY"
                and d["status"]["replicaStats"]["readyReplicaCount"] == 2
            ),
        )
        old = {p["metadata"]["labels"]["hearth.dev/spec-hash"] for p in cluster.pods("d1")}
        cluster.kube.merge_patch("Deployment", "d1", "acme", {"spec": {"maxPeftRank": 32}})
        # Stop the operator as soon as the rollout has begun.
        cluster.wait_state("Deployment", "d1", "UPDATING")
    with cluster.operator():
        dep = cluster.wait(
            "Deployment",
            "d1",
            lambda d: (
                d["status"].get("state") == "READY"
                and d["status"]["observedGeneration"] == d["metadata"]["generation"]
                and d["status"]["replicaStats"]["readyReplicaCount"] == 2
                and len(cluster.pods("d1")) == 2
            ),
            timeout=60,
        )
        hashes = {p["metadata"]["labels"]["hearth.dev/spec-hash"] for p in cluster.pods("d1")}
        assert hashes.isdisjoint(old) and len(hashes) == 1
        assert "--max-lora-rank" in cluster.pods("d1")[0]["spec"]["containers"][0]["args"]
        assert dep["status"]["replicaStats"]["readyReplicaCount"] == 2


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_deployed_model_loads_on_every_replica_and_unloads_on_delete(cluster, kubelet):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.apply(ADDON)
        cluster.apply(deployment(minReplicaCount=2, maxReplicaCount=2))
        cluster.wait(
            "Deployment",
            "d1",
            lambda d: d["status"].get("replicaStats", {}).get("readyReplicaCount") == 2,
        )
        cluster.apply(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "DeployedModel",
                "metadata": {"name": "pirate-d1", "namespace": "acme"},
                "spec": {"model": "pirate", "deployment": "d1"},
            }
        )
        dm = cluster.wait(
            "DeployedModel",
            "pirate-d1",
            lambda d: (
                (d.get("status") or {}).get("state") == "DEPLOYED"
                and d["status"]["loadedReplicaCount"] == 2
            ),
        )
        assert dm["status"]["default"] is True
        assert "hearth.dev/unload-adapters" in dm["metadata"]["finalizers"]
        loads = [c for c in cluster.adapter_calls() if c["call"] == "load"]
        assert len(loads) == 2 and {c["lora_name"] for c in loads} == {
            "accounts/acme/models/pirate"
        }
        assert {c["lora_path"] for c in loads} == {"pvc://artifacts/adapters/pirate"}
        # A new replica gets the adapter too.
        cluster.kube.delete("Pod", cluster.pods("d1")[0]["metadata"]["name"], "acme")
        eventually(
            lambda: len([c for c in cluster.adapter_calls() if c["call"] == "load"]) == 3,
            timeout=60,
        )
        cluster.wait(
            "DeployedModel",
            "pirate-d1",
            lambda d: d["status"]["state"] == "DEPLOYED" and d["status"]["loadedReplicaCount"] == 2,
            timeout=60,
        )
        # Deleting unloads from every replica, then the object goes.
        cluster.kube.delete("DeployedModel", "pirate-d1", "acme")
        eventually(lambda: cluster.get("DeployedModel", "pirate-d1") is None, timeout=60)
        unloads = [c for c in cluster.adapter_calls() if c["call"] == "unload"]
        assert len(unloads) == 2


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_cross_object_rules_of_deployed_models(cluster, kubelet):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.apply(
            ADDON.replace("name: pirate", "name: broken").replace(
                "adapters/pirate", "adapters/broken"
            )
        )
        cluster.apply(deployment("plain", enableAddons=False))
        cluster.apply(deployment("d1"))
        cluster.wait_state("Deployment", "d1", "READY")
        cluster.apply(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "DeployedModel",
                "metadata": {"name": "on-plain", "namespace": "acme"},
                "spec": {"model": "broken", "deployment": "plain"},
            }
        )
        refused = cluster.wait(
            "DeployedModel",
            "on-plain",
            lambda d: (
                (d.get("status") or {}).get("state") == "FAILED"
                and condition(d, "Ready")["reason"] == "AddonsDisabled"
            ),
        )
        assert "does not have enableAddons: true" in refused["status"]["message"]
        cluster.apply(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "DeployedModel",
                "metadata": {"name": "broken-d1", "namespace": "acme"},
                "spec": {"model": "broken", "deployment": "d1"},
            }
        )
        failed = cluster.wait(
            "DeployedModel", "broken-d1", lambda d: (d.get("status") or {}).get("state") == "FAILED"
        )
        assert "adapter_config.json is missing" in failed["status"]["message"]
        assert failed["status"]["replicas"][0]["state"] == "FAILED"


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_servers_require_the_deployment_token_and_the_operator_sends_it(cluster, kubelet):
    import httpx

    from hearth_operator.planning.deployment import api_key_from_secret

    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        # The operator reads and creates Secrets only where the account grants it.
        binding = cluster.wait("RoleBinding", "hearth-operator-secrets", lambda b: True)
        assert binding["roleRef"]["name"] == "hearth-operator-secrets"
        cluster.apply(BASE)
        cluster.apply(ADDON)
        cluster.apply(deployment())
        cluster.wait_state("Deployment", "d1", "READY")
        secret = cluster.get("Secret", "d1-api-key")
        token = api_key_from_secret(secret)
        assert token is not None and len(token) >= 43  # 256 random bits, URL-safe base64
        assert secret["metadata"]["ownerReferences"][0]["name"] == "d1"
        pod = cluster.pods("d1")[0]
        assert token not in str(pod["spec"])
        url = f"http://{pod['status']['podIP']}:8000"
        assert httpx.get(f"{url}/v1/models", timeout=5).status_code == 401
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        # Adapter calls carry the token: the stub refuses any call without it.
        cluster.apply(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "DeployedModel",
                "metadata": {"name": "pirate-d1", "namespace": "acme"},
                "spec": {"model": "pirate", "deployment": "d1"},
            }
        )
        cluster.wait_state("DeployedModel", "pirate-d1", "DEPLOYED")
        cluster.kube.delete("DeployedModel", "pirate-d1", "acme")
        eventually(lambda: cluster.get("DeployedModel", "pirate-d1") is None, timeout=60)
        calls = [c["call"] for c in cluster.adapter_calls()]
        assert calls == ["load", "unload"]
        # A resync never rotates the token (the running servers hold it).
        cluster.kube.merge_patch("Deployment", "d1", "acme", {"spec": {"maxPeftRank": 32}})
        cluster.wait(
            "Deployment",
            "d1",
            lambda d: d["status"]["observedGeneration"] == 2 and d["status"]["state"] == "READY",
        )
        assert api_key_from_secret(cluster.get("Secret", "d1-api-key")) == token


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_a_server_whose_engine_died_is_replaced_through_the_liveness_probe(cluster, tmp_path):
    import httpx

    from hearth_operator.planning.deployment import api_key_from_secret
    from tests.harness.kubelet import ProcessKubelet

    # Probe periods capped at 1 s: the same thresholds, decided sooner.
    with (
        ProcessKubelet(
            cluster.api, log_dir=tmp_path / "pod-logs", backoff_max=1.0, probe_period_cap=1.0
        ),
        cluster.operator(),
    ):
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.apply(deployment())
        cluster.wait_state("Deployment", "d1", "READY")
        pod = cluster.pods("d1")[0]
        token = api_key_from_secret(cluster.get("Secret", "d1-api-key"))
        killed = httpx.post(
            f"http://{pod['status']['podIP']}:8000/test/kill-engine",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert killed.status_code == 200
        # The process stays up answering 503: only the liveness probe can replace it.
        restarted = cluster.wait(
            "Pod",
            pod["metadata"]["name"],
            lambda p: (
                p["status"]["containerStatuses"][0]["restartCount"] >= 1
                and condition(p, "Ready")["status"] == "True"
            ),
        )
        assert restarted["metadata"]["uid"] == pod["metadata"]["uid"]  # same pod, new container
        # Killed (SIGKILL) by the kubelet, not exited by itself.
        last = restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]
        assert last["exitCode"] == 137, last
        cluster.wait(
            "Deployment",
            "d1",
            lambda d: (
                d["status"]["state"] == "READY"
                and d["status"]["replicaStats"]["readyReplicaCount"] == 1
            ),
        )
        assert (
            httpx.get(f"http://{pod['status']['podIP']}:8000/health", timeout=5).status_code == 200
        )


@pytest.mark.slow  # the kubelet runs the stub server as real processes
def test_deletion_waits_for_the_operator_only_where_an_adapter_is_loaded(cluster, kubelet):
    with cluster.operator():
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(BASE)
        cluster.apply(ADDON)
        cluster.apply(deployment())
        cluster.wait_state("Deployment", "d1", "READY")
        cluster.apply(
            {
                "apiVersion": "hearth.dev/v1alpha1",
                "kind": "DeployedModel",
                "metadata": {"name": "pirate-d1", "namespace": "acme"},
                "spec": {"model": "pirate", "deployment": "d1"},
            }
        )
        cluster.wait_state("DeployedModel", "pirate-d1", "DEPLOYED")
        base_dm = next(
            d["metadata"]["name"]
            for d in cluster.kube.list("DeployedModel", "acme")
            if d["spec"]["model"] == "smollm2"
        )
        cluster.wait_state("DeployedModel", base_dm, "DEPLOYED")
        # Let a resync pass run over everything (it used to be a timer per object).
        cluster.wait(
            "Account", "acme", lambda a: a["status"]["usage"]["deployments"] == 1, namespace=None
        )
        finalizers = {
            (kind, name): (cluster.get(kind, name, namespace) or {})["metadata"].get("finalizers")
            for kind, name, namespace in [
                ("Account", "acme", None),
                ("Model", "smollm2", "acme"),
                ("Model", "pirate", "acme"),
                ("Deployment", "d1", "acme"),
                ("DeployedModel", base_dm, "acme"),
                ("DeployedModel", "pirate-d1", "acme"),
            ]
        }
        assert finalizers == {
            **{key: None for key in finalizers},
            ("DeployedModel", "pirate-d1"): ["hearth.dev/unload-adapters"],
        }
    # The operator is down (or uninstalled): deleting the account still cascades.
    cluster.kube.delete("Account", "acme")
    eventually(lambda: cluster.get("Account", "acme", None) is None, timeout=30)
    eventually(
        lambda: (
            not cluster.kube.list("Deployment", "acme")
            and not cluster.kube.list("Model", "acme")
            and not cluster.kube.list("Pod", "acme")
        ),
        timeout=60,
    )
    # Only the DeployedModel whose adapter was loaded waits, for its unload.
    remaining = cluster.kube.list("DeployedModel", "acme")
    assert [d["metadata"]["name"] for d in remaining] == ["pirate-d1"]
    assert remaining[0]["metadata"].get("deletionTimestamp")
    assert cluster.get("Namespace", "acme", None)["status"]["phase"] == "Terminating"
    with cluster.operator():
        # Its replicas are gone, so there is nothing left to unload: it is released.
        eventually(lambda: cluster.get("DeployedModel", "pirate-d1") is None, timeout=60)
        eventually(lambda: cluster.get("Namespace", "acme", None) is None, timeout=60)


def test_finalizers_left_by_an_older_operator_are_removed(cluster):
    cluster.apply(ACCOUNT)
    model = yaml.safe_load(BASE)
    model["metadata"]["finalizers"] = ["hearth.dev/unload-adapters"]
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    cluster.apply(model)
    with cluster.operator():
        cluster.wait_state("Model", "smollm2", "READY")
        cluster.wait("Model", "smollm2", lambda m: not m["metadata"].get("finalizers"))
