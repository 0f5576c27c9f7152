"""Cluster objects as the operator leaves them, for the gateway's pure tests."""

from __future__ import annotations

from typing import Any

from hearth.api_keys import generate_key, hash_key, key_prefix, new_salt
from hearth_operator.planning.deployment import render_api_key_secret

Obj = dict[str, Any]
_clock = iter(range(10_000))


def _meta(name: str, namespace: str | None, **extra: Any) -> Obj:
    metadata: Obj = {
        "name": name,
        "uid": f"uid-{namespace}-{name}",
        "creationTimestamp": f"2026-01-01T00:00:{next(_clock) % 60:02d}Z",
        **extra,
    }
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def account(name: str, **spec: Any) -> Obj:
    return {"kind": "Account", "metadata": _meta(name, None), "spec": spec}


def user(namespace: str, name: str, role: str = "user") -> Obj:
    return {"kind": "User", "metadata": _meta(name, namespace), "spec": {"role": role}}


def model(namespace: str, name: str, *, addon_of: str | None = None) -> Obj:
    spec: Obj = {"kind": "HF_BASE_MODEL", "source": {"uri": f"pvc://artifacts/{name}"}}
    if addon_of:
        spec = {
            "kind": "HF_PEFT_ADDON",
            "source": {"uri": f"pvc://artifacts/{name}"},
            "peftDetails": {"baseModel": addon_of, "r": 8},
        }
    return {"kind": "Model", "metadata": _meta(name, namespace), "spec": spec}


def deployment(namespace: str, name: str, base: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace),
        "spec": {"baseModel": base, "acceleratorType": "CPU", **spec},
    }


def deployed_model(
    namespace: str,
    name: str,
    model_ref: str,
    deployment_ref: str,
    *,
    default: bool = False,
    state: str = "DEPLOYED",
    **spec: Any,
) -> Obj:
    return {
        "kind": "DeployedModel",
        "metadata": _meta(name, namespace),
        "spec": {"model": model_ref, "deployment": deployment_ref, **spec},
        "status": {"state": state, "default": default},
    }


def pod(
    namespace: str,
    deployment_name: str,
    name: str,
    ip: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    annotations: dict[str, str] | None = None,
) -> Obj:
    return {
        "kind": "Pod",
        "metadata": _meta(
            name,
            namespace,
            labels={
                "app.kubernetes.io/name": "hearth-server",
                "hearth.dev/deployment": deployment_name,
            },
            annotations=annotations or {},
        ),
        "spec": {
            "containers": [{"name": "server", "ports": [{"name": "http", "containerPort": 8000}]}]
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "server", "restartCount": restarts}],
        },
    }


def api_token_secret(deployment_obj: Obj, token: str) -> Obj:
    return render_api_key_secret(deployment_obj, token)


def api_key(
    namespace: str,
    name: str,
    user_id: str,
    *,
    key: str | None = None,
    state: str = "READY",
    expire_time: str | None = None,
) -> tuple[Obj, str]:
    """(the ApiKey object, its plaintext)."""
    plaintext = key or generate_key()
    salt = new_salt()
    spec: Obj = {"user": user_id, "displayName": "default"}
    if expire_time:
        spec["expireTime"] = expire_time
    obj = {
        "kind": "ApiKey",
        "metadata": _meta(name, namespace),
        "spec": spec,
        "status": {
            "state": state,
            "prefix": key_prefix(plaintext),
            "salt": salt,
            "keyHash": hash_key(plaintext, salt),
        },
    }
    return obj, plaintext
