"""Small builders of stored objects for the operator's planner tests."""

from __future__ import annotations

from typing import Any

from hearth.validation import validate

Obj = dict[str, Any]


def stored(kind: str, name: str, spec: Obj, *, namespace: str | None = "acme", **meta: Any) -> Obj:
    """An object as the API server would store it: defaults applied, server metadata set."""
    metadata: Obj = {
        "name": name,
        "uid": f"uid-{kind.lower()}-{name}",
        "generation": 1,
        "creationTimestamp": meta.pop("created", "2026-11-25T10:00:00Z"),
    }
    if namespace is not None and kind != "Account":
        metadata["namespace"] = namespace
    metadata.update(meta)
    obj = {"apiVersion": "hearth.dev/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}
    result = validate(obj)
    assert result.ok, result.describe()
    return result.defaulted


def with_status(obj: Obj, **status: Any) -> Obj:
    return {**obj, "status": {**(obj.get("status") or {}), **status}}


def base_model(
    name: str = "smollm2", namespace: str = "acme", ready: bool = True, **spec: Any
) -> Obj:
    model = stored(
        "Model",
        name,
        {"kind": "HF_BASE_MODEL", "source": {"uri": "builtin://smollm2-135m-instruct"}, **spec},
        namespace=namespace,
    )
    return with_status(model, state="READY") if ready else model


def addon_model(
    name: str = "lora", base: str = "smollm2", r: int = 8, ready: bool = True, **spec: Any
) -> Obj:
    model = stored(
        "Model",
        name,
        {
            "kind": "HF_PEFT_ADDON",
            "source": {"uri": f"pvc://artifacts/adapters/{name}"},
            "peftDetails": {"baseModel": base, "r": r},
            **spec,
        },
    )
    return with_status(model, state="READY") if ready else model


def pod(
    name: str,
    *,
    deployment: str = "d1",
    spec_hash: str = "h",
    ready: bool = True,
    phase: str = "Running",
    ip: str = "10.0.0.1",
    gpus: int = 0,
    accelerator: str = "CPU",
    created: str = "2026-11-25T10:00:00Z",
    restarts: int = 0,
    annotations: dict[str, str] | None = None,
    terminated: Obj | None = None,
) -> Obj:
    requests = {"nvidia.com/gpu": str(gpus)} if gpus else {"cpu": "1"}
    container_status: Obj = {
        "name": "server",
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {}},
    }
    if terminated:
        container_status["lastState"] = {"terminated": terminated}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "acme",
            "creationTimestamp": created,
            "labels": {
                "hearth.dev/deployment": deployment,
                "hearth.dev/spec-hash": spec_hash,
                "hearth.dev/account": "acme",
                "app.kubernetes.io/component": "model-server",
            },
            "annotations": {"hearth.dev/accelerator-type": accelerator, **(annotations or {})},
        },
        "spec": {"containers": [{"name": "server", "resources": {"requests": requests}}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
            "containerStatuses": [container_status],
        },
    }
