"""ApiKeys through the real operator (kopf) and the emulated API server.

The key is issued once into a Secret its user may read, its hash verifies, the User owns
it (deleting the User garbage-collects its keys), a missing user and a past expireTime
show in status, and a restart or a lost status write never issues a second key.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from hearth.api_keys import verify_key
from hearth_operator import resync
from hearth_operator.planning.api_key import key_from_secret
from tests.harness.waiting import eventually
from tests.operator.test_operator_component import ACCOUNT

# kopf runs in-process; the emulated API server and the garbage collector run for real.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

USERS = """
apiVersion: hearth.dev/v1alpha1
kind: User
metadata: {name: alice, namespace: acme}
spec: {role: user, email: alice@acme.example}
---
apiVersion: hearth.dev/v1alpha1
kind: User
metadata: {name: bot, namespace: acme}
spec: {role: inference-user, serviceAccount: true}
"""


def api_key(name, user, **spec):
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ApiKey",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"user": user, **spec},
    }


def ready(obj):
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def plaintext(cluster, key):
    secret = cluster.get("Secret", key["status"]["secretName"])
    assert secret is not None
    return key_from_secret(secret)


def setup_account(cluster):
    cluster.apply(ACCOUNT)
    cluster.wait_state("Account", "acme", "READY", namespace=None)
    cluster.apply(USERS)
    cluster.wait_state("User", "alice", "READY")
    cluster.wait_state("User", "bot", "READY")


def test_key_is_issued_readable_by_its_user_and_collected_with_the_user(cluster):
    with cluster.operator():
        setup_account(cluster)
        cluster.apply(api_key("alice-key", "alice", displayName="laptop"))
        cluster.apply(api_key("bot-key", "bot"))
        key = cluster.wait_state("ApiKey", "alice-key", "READY")
        status = key["status"]
        assert status["secretName"] == "alice-key.api-key"
        value = plaintext(cluster, key)
        assert value.startswith(status["prefix"]) and len(value) == 46
        assert verify_key(value, status["salt"], status["keyHash"])
        assert not verify_key(value + "x", status["salt"], status["keyHash"])
        assert ready(key)["status"] == "True"
        # The User owns the key; the key owns its Secret, Role and RoleBinding.
        user = cluster.get("User", "alice")
        owners = key["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"]) for o in owners] == [("User", user["metadata"]["uid"])]
        role = cluster.get("Role", "alice-key.api-key")
        assert role["rules"][0]["resourceNames"] == ["alice-key.api-key"]
        assert role["rules"][0]["verbs"] == ["get"]
        binding = cluster.get("RoleBinding", "alice-key.api-key")
        assert binding["subjects"] == [
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@acme.example"}
        ]
        for child in ("Secret", "Role", "RoleBinding"):
            obj = cluster.get(child, "alice-key.api-key")
            assert obj["metadata"]["ownerReferences"][0]["uid"] == key["metadata"]["uid"]
        bot_key = cluster.wait_state("ApiKey", "bot-key", "READY")
        bot_binding = cluster.get("RoleBinding", "bot-key.api-key")
        assert bot_binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "bot", "namespace": "acme"}
        ]
        assert plaintext(cluster, bot_key) != value

        cluster.kube.delete("User", "alice", "acme")
        eventually(lambda: cluster.get("ApiKey", "alice-key") is None, timeout=60)
        eventually(lambda: cluster.get("Secret", "alice-key.api-key") is None, timeout=60)
        eventually(lambda: cluster.get("RoleBinding", "alice-key.api-key") is None, timeout=60)
        assert cluster.get("ApiKey", "bot-key") is not None


def test_key_is_never_issued_twice(cluster):
    with cluster.operator():
        setup_account(cluster)
        cluster.apply(api_key("k1", "alice"))
        first = cluster.wait_state("ApiKey", "k1", "READY")["status"]
        value = plaintext(cluster, cluster.get("ApiKey", "k1"))
    # A restarted operator resumes the key and changes nothing.
    with cluster.operator():
        cluster.kube.merge_patch("ApiKey", "k1", "acme", {"spec": {"displayName": "renamed"}})
        cluster.wait("ApiKey", "k1", lambda k: k["status"].get("observedGeneration") == 2)
        again = cluster.get("ApiKey", "k1")["status"]
        assert (again["prefix"], again["salt"], again["keyHash"]) == (
            first["prefix"],
            first["salt"],
            first["keyHash"],
        )
        assert plaintext(cluster, cluster.get("ApiKey", "k1")) == value
    # The status write was lost after the Secret was created: the hash is rebuilt from the
    # Secret, never from a new key.
    cluster.kube.patch_status("ApiKey", "k1", "acme", {"keyHash": None, "salt": None})
    assert "keyHash" not in cluster.get("ApiKey", "k1")["status"]
    with cluster.operator():
        rebuilt = cluster.wait("ApiKey", "k1", lambda k: "keyHash" in k["status"])["status"]
        assert rebuilt["prefix"] == first["prefix"]
        assert verify_key(value, rebuilt["salt"], rebuilt["keyHash"])
        assert plaintext(cluster, cluster.get("ApiKey", "k1")) == value


def test_key_for_a_missing_user_fails_until_the_user_exists(cluster):
    with cluster.operator():
        setup_account(cluster)
        cluster.apply(api_key("early", "carol"))
        failed = cluster.wait_state("ApiKey", "early", "FAILED")
        assert failed["status"]["message"].startswith(
            "spec.user: user 'carol' does not exist in account 'acme'"
        )
        assert ready(failed)["status"] == "False"
        assert "keyHash" not in failed["status"]
        assert cluster.get("Secret", "early.api-key") is None
        cluster.apply("""
apiVersion: hearth.dev/v1alpha1
kind: User
metadata: {name: carol, namespace: acme}
spec: {role: contributor, email: carol@acme.example}
""")
        issued = cluster.wait_state("ApiKey", "early", "READY")
        assert verify_key(
            plaintext(cluster, issued), issued["status"]["salt"], issued["status"]["keyHash"]
        )


def test_expired_keys_are_reported(cluster):
    with cluster.operator():
        setup_account(cluster)
        cluster.apply(api_key("old", "alice", expireTime="2020-01-01T00:00:00Z"))
        expired = cluster.wait_state("ApiKey", "old", "EXPIRED")
        assert expired["status"]["message"] == "the key expired at 2020-01-01T00:00:00Z"
        assert ready(expired)["reason"] == "Expired"
        cluster.apply(api_key("later", "alice", expireTime="2099-01-01T00:00:00Z"))
        cluster.wait_state("ApiKey", "later", "READY")
    # Time passes with no change to the object: the resync pass re-derives the state.
    ctx = replace(cluster.context(), clock=lambda: datetime(2099, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert resync.resync_pass(ctx) > 0
    later = cluster.get("ApiKey", "later")
    assert later["status"]["state"] == "EXPIRED"
    assert later["status"]["message"] == "the key expired at 2099-01-01T00:00:00Z"
