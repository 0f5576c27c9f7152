"""ApiKey planning: the key issued once, its Secret and reader Role, ownership, states."""

import base64
from datetime import UTC, datetime

import pytest

from hearth.api import Role
from hearth.api_keys import hash_key, verify_key
from hearth_operator.planning.api_key import key_from_secret, plan_api_key
from hearth_operator.planning.roles import role_rules
from tests.operator.factories import stored, with_status

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = "hk_" + "k" * 43
OTHER_KEY = "hk_" + "o" * 43
SALT = "00" * 16


def api_key(name="k1", user="alice", **spec):
    return stored("ApiKey", name, {"user": user, **spec})


def alice(**spec):
    return stored("User", "alice", {"role": "user", "email": "alice@acme.example", **spec})


def bot():
    return stored("User", "bot", {"role": "inference-user", "serviceAccount": True})


def never():
    raise AssertionError("no key may be generated here")


def plan(key, user, secret=None, **kwargs):
    kwargs.setdefault("new_key", lambda: KEY)
    kwargs.setdefault("new_salt", lambda: SALT)
    return plan_api_key(key, user, secret, NOW, **kwargs)


def ready(status):
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_a_new_key_gets_a_secret_and_only_its_hash_in_status():
    key = api_key()
    result = plan(key, alice())
    assert result.generated
    secret = result.secret
    assert secret is not None
    assert secret["metadata"]["name"] == "k1.api-key"
    assert secret["metadata"]["namespace"] == "acme"
    assert secret["metadata"]["labels"]["hearth.dev/api-key"] == "k1"
    assert secret["metadata"]["labels"]["hearth.dev/user"] == "alice"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == key["metadata"]["uid"]
    assert key_from_secret(secret) == KEY
    status = result.status
    assert status["state"] == "READY"
    assert status["prefix"] == KEY[:12]
    assert status["salt"] == SALT
    assert status["keyHash"] == hash_key(KEY, SALT)
    assert verify_key(KEY, status["salt"], status["keyHash"])
    assert status["secretName"] == "k1.api-key"
    assert KEY not in str(status)
    assert ready(status)["status"] == "True"
    assert "Secret 'k1.api-key'" in status["message"]


def test_the_user_becomes_the_keys_owner():
    result = plan(api_key(), alice())
    (owner,) = result.owner_references
    assert owner["kind"] == "User" and owner["uid"] == "uid-user-alice"
    assert owner["controller"] is False
    # Already owned: nothing to change.
    owned = api_key()
    owned["metadata"]["ownerReferences"] = [owner]
    assert plan(owned, alice()).owner_references is None


def test_a_stale_user_reference_is_replaced_and_other_owners_kept():
    key = api_key()
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "uid-c"}
    stale = {"apiVersion": "hearth.dev/v1alpha1", "kind": "User", "name": "alice", "uid": "old"}
    key["metadata"]["ownerReferences"] = [other, stale]
    refs = plan(key, alice()).owner_references
    assert [r["uid"] for r in refs] == ["uid-c", "uid-user-alice"]


def test_the_users_subject_may_read_exactly_that_secret():
    role, binding = plan(api_key(), alice()).access
    assert role["kind"] == "Role" and role["metadata"]["name"] == "k1.api-key"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["k1.api-key"],
            "verbs": ["get"],
        }
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "k1.api-key",
    }
    assert binding["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@acme.example"}
    ]
    for obj in (role, binding):
        assert obj["metadata"]["ownerReferences"][0]["kind"] == "ApiKey"


def test_a_service_account_reads_its_key_as_its_service_account():
    _, binding = plan(api_key(user="bot"), bot()).access
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "bot", "namespace": "acme"}]


def test_an_issued_key_is_never_generated_again():
    issued = with_status(
        api_key(), state="READY", prefix=KEY[:12], salt=SALT, keyHash=hash_key(KEY, SALT)
    )
    secret = plan(api_key(), alice()).secret
    result = plan(issued, alice(), secret, new_key=never, new_salt=never)
    assert result.secret is None and not result.generated
    assert result.status["keyHash"] == hash_key(KEY, SALT)
    assert result.status["state"] == "READY"


def test_a_secret_written_before_a_crash_gives_back_its_key():
    # The operator created the Secret, then died before writing status.
    key = api_key()
    secret = plan(key, alice()).secret
    result = plan(key, alice(), secret, new_key=never, new_salt=lambda: "ff" * 16)
    assert result.secret is None and not result.generated
    assert result.status["prefix"] == KEY[:12]
    assert verify_key(KEY, result.status["salt"], result.status["keyHash"])
    assert result.status["state"] == "READY"


def test_an_issued_key_whose_secret_was_deleted_keeps_working_and_says_so():
    issued = with_status(
        api_key(), state="READY", prefix=KEY[:12], salt=SALT, keyHash=hash_key(KEY, SALT)
    )
    result = plan(issued, alice(), None, new_key=never, new_salt=never)
    assert result.secret is None
    assert result.status["state"] == "READY"
    assert "was deleted" in result.status["message"]


def test_a_secret_of_another_owner_is_not_taken_over():
    secret = plan(api_key(), alice()).secret
    secret["metadata"]["ownerReferences"] = [{"kind": "ApiKey", "name": "k1", "uid": "previous"}]
    result = plan(api_key(), alice(), secret, new_key=never, new_salt=never)
    assert result.status["state"] == "FAILED"
    assert ready(result.status)["reason"] == "SecretConflict"
    assert result.secret is None and result.access == ()


def test_an_unreadable_secret_is_reported_not_replaced():
    secret = plan(api_key(), alice()).secret
    secret["data"] = {"key": "%%% not base64"}
    result = plan(api_key(), alice(), secret, new_key=never, new_salt=never)
    assert result.status["state"] == "FAILED"
    assert "holds no key under data.key" in result.status["message"]


def test_a_key_for_a_missing_user_fails_with_the_field_named():
    result = plan(api_key(user="ghost"), None, new_key=never, new_salt=never)
    assert result.status["state"] == "FAILED"
    assert result.status["message"].startswith(
        "spec.user: user 'ghost' does not exist in account 'acme'"
    )
    cond = ready(result.status)
    assert (cond["status"], cond["reason"]) == ("False", "UserNotFound")
    assert result.secret is None and result.owner_references is None and result.access == ()


def test_a_key_for_a_user_being_deleted_fails():
    leaving = alice()
    leaving["metadata"]["deletionTimestamp"] = "2026-11-25T11:00:00Z"
    result = plan(api_key(), leaving, new_key=never, new_salt=never)
    assert result.status["state"] == "FAILED"
    assert "is being deleted" in result.status["message"]


@pytest.mark.parametrize(
    ("expire", "state"),
    [
        ("2026-11-25T11:59:59Z", "EXPIRED"),
        ("2026-11-25T12:00:00Z", "EXPIRED"),  # at the instant itself: expired
        ("2026-11-25T12:00:01Z", "READY"),
        ("2026-11-25T13:00:00+02:00", "EXPIRED"),  # 11:00 UTC
    ],
)
def test_expiry(expire, state):
    result = plan(api_key(expireTime=expire), alice())
    assert result.status["state"] == state
    cond = ready(result.status)
    assert cond["status"] == ("True" if state == "READY" else "False")
    if state == "EXPIRED":
        assert cond["reason"] == "Expired"
        assert result.status["message"].startswith("the key expired at 2026-11-25T")
    else:
        assert "until 2026-11-25T12:00:01Z" in result.status["message"]


def test_a_ready_key_expires_on_a_later_pass():
    key = api_key(expireTime="2026-11-25T12:30:00Z")
    first = plan(key, alice())
    issued = with_status(key, **first.status)
    later = plan_api_key(issued, alice(), first.secret, datetime(2026, 11, 25, 13, tzinfo=UTC))
    assert later.status["state"] == "EXPIRED"
    assert later.status["keyHash"] == first.status["keyHash"]
    assert ready(later.status)["lastTransitionTime"] == "2026-11-25T13:00:00Z"


def test_generated_keys_are_real_random_keys_by_default():
    result = plan_api_key(api_key(), alice(), None, NOW)
    key = key_from_secret(result.secret)
    assert key is not None and key.startswith("hk_") and len(key) == 46
    assert verify_key(key, result.status["salt"], result.status["keyHash"])
    again = plan_api_key(api_key(), alice(), None, NOW)
    assert key_from_secret(again.secret) != key


def test_key_from_secret_tolerates_absent_and_broken_data():
    assert key_from_secret(None) is None
    assert key_from_secret({"data": {}}) is None
    assert key_from_secret({"data": {"key": base64.b64encode(b"\xff\xfe").decode()}}) is None
    assert key_from_secret({"data": {"key": base64.b64encode(OTHER_KEY.encode()).decode()}}) == (
        OTHER_KEY
    )


def verbs(role, resource):
    return {v for rule in role_rules(role) if resource in rule["resources"] for v in rule["verbs"]}


@pytest.mark.parametrize("role", list(Role))
def test_account_roles_on_api_keys(role):
    assert verbs(role, "apikeys") >= {"get", "list", "watch"}
    writes = {"create", "delete"} <= verbs(role, "apikeys")
    assert writes is (role == Role.ADMIN)
    assert not verbs(role, "apikeys/status") - {"get", "list", "watch"}
    # No account role reads Secrets: a key's plaintext is readable only through its own Role.
    assert not verbs(role, "secrets")


def gateway_issued(**spec):
    key = api_key(**spec)
    key["metadata"].setdefault("annotations", {})["hearth.dev/key-issuer"] = "gateway"
    return key


def test_a_gateway_issued_key_waits_for_its_hash_and_never_gets_a_secret():
    result = plan(gateway_issued(), alice(), new_key=never, new_salt=never)
    assert result.status["state"] == "CREATING"
    assert ready(result.status)["reason"] == "AwaitingHash"
    assert result.secret is None and result.access == () and not result.generated


def test_a_gateway_issued_key_with_its_hash_is_ready_without_a_secret():
    issued = {"prefix": KEY[:12], "salt": SALT, "keyHash": hash_key(KEY, SALT)}
    result = plan(with_status(gateway_issued(), **issued), alice(), new_key=never)
    assert result.status["state"] == "READY"
    assert result.status["keyHash"] == hash_key(KEY, SALT)
    assert "secretName" not in result.status and "shown once" in result.status["message"]
    assert result.secret is None and result.access == ()


def test_a_gateway_issued_key_expires_like_any_other():
    issued = {"prefix": KEY[:12], "salt": SALT, "keyHash": hash_key(KEY, SALT)}
    key = with_status(gateway_issued(expireTime="2026-01-01T00:00:00Z"), **issued)
    assert plan(key, alice(), new_key=never).status["state"] == "EXPIRED"
