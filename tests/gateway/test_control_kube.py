"""Who the control plane acts as on the Kubernetes API, and how its errors map."""

from __future__ import annotations

import json

import pytest

from hearth_gateway.control.errors import ApiError, error_body
from hearth_gateway.control.kube import api_error, impersonation_headers, path
from hearth_operator.planning.user import plan_user


def user_obj(name: str, **spec) -> dict:
    return {
        "kind": "User",
        "metadata": {"name": name, "namespace": "acme", "uid": "u"},
        "spec": spec,
    }


def test_a_person_is_impersonated_as_the_subject_the_operator_binds() -> None:
    person = user_obj("ann", role="user", email="ann@acme.example")
    headers = impersonation_headers(person)
    subject = plan_user(person).role_binding["subjects"][0]
    assert (
        headers == {"Impersonate-User": subject["name"]} == {"Impersonate-User": "ann@acme.example"}
    )


def test_a_service_account_is_impersonated_by_its_username() -> None:
    robot = user_obj("ci", role="user", serviceAccount=True)
    subject = plan_user(robot).role_binding["subjects"][0]
    expected = f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
    assert impersonation_headers(robot) == {"Impersonate-User": expected}


def test_no_subject_no_write() -> None:
    for user in (None, user_obj("x", role="user")):
        with pytest.raises(ApiError) as error:
            impersonation_headers(user)
        assert error.value.status == 403


def test_kubernetes_errors_map_to_fireworks_statuses() -> None:
    def status(code: int, reason: str, message: str = "m") -> str:
        return json.dumps({"kind": "Status", "code": code, "reason": reason, "message": message})

    assert api_error(404, status(404, "NotFound"), "Model", "m").status == 404
    exists = api_error(409, status(409, "AlreadyExists"), "Model", "m")
    assert exists.status == 409 and not exists.aborted and "already exists" in exists.message
    conflict = api_error(409, status(409, "Conflict"), "Model", "m")
    assert conflict.aborted and error_body(409, "x", aborted=True)["status"] == "ABORTED"
    invalid = api_error(422, status(422, "Invalid", "spec.r: must be >= 4"), "Model", "m")
    assert invalid.status == 400 and invalid.message == "spec.r: must be >= 4"
    assert api_error(403, status(403, "Forbidden"), "Model", "m").message.startswith(
        "permission denied by Kubernetes RBAC"
    )
    assert api_error(0, "ConnectError", "Model", "m").status == 503
    assert error_body(400, "x") == {
        "code": 3,
        "status": "INVALID_ARGUMENT",
        "message": "x",
        "details": [],
    }


def test_paths() -> None:
    assert path("FineTuningJob", "acme", "j", "status") == (
        "/apis/hearth.dev/v1alpha1/namespaces/acme/finetuningjobs/j/status"
    )
    assert path("Account", None, "acme") == "/apis/hearth.dev/v1alpha1/accounts/acme"
