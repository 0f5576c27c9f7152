"""Pieces every pod the operator runs shares: volumes for pvc:// URIs, accelerators, Jobs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..constants import ACCOUNT_ARTIFACT_CLAIM
from ..settings import Settings
from .common import Obj


def claims_of(uris: list[str]) -> list[str]:
    """PersistentVolumeClaims named by ``pvc://claim/path`` URIs, the artifact one first."""
    claims = [ACCOUNT_ARTIFACT_CLAIM]
    for uri in uris:
        if uri.startswith("pvc://"):
            claim = uri[len("pvc://") :].split("/", 1)[0]
            if claim not in claims:
                claims.append(claim)
    return claims


def pvc_volumes(
    uris: list[str], settings: Settings, *, read_only: bool
) -> tuple[list[Obj], list[Obj]]:
    """Volumes and mounts putting each claim at ``<pvc_mount_root>/<claim>``.

    That is where hearth-server and hearth-trainer resolve ``pvc://claim/path``.
    """
    volumes, mounts = [], []
    for index, claim in enumerate(claims_of(uris)):
        name = "artifacts" if claim == ACCOUNT_ARTIFACT_CLAIM else f"claim-{index}"
        volumes.append(
            {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
        )
        mounts.append(
            {"name": name, "mountPath": f"{settings.pvc_mount_root}/{claim}", "readOnly": read_only}
        )
    return volumes, mounts


def accelerator_placement(
    accelerator_type: str, count: int, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(container resources, pod spec fields: nodeSelector/tolerations) for an accelerator."""
    placement = settings.accelerators.get(accelerator_type)
    if placement is None or placement.resource is None or count == 0:
        return {"requests": dict(settings.cpu_requests)}, {}
    resources = {
        "requests": {placement.resource: str(count)},
        "limits": {placement.resource: str(count)},
    }
    pod_fields: dict[str, Any] = {}
    if placement.node_selector:
        pod_fields["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod_fields["tolerations"] = [dict(t) for t in placement.tolerations]
    return resources, pod_fields


def job_finished(job: Obj) -> str | None:
    """ "Complete" or "Failed" once a batch/v1 Job has finished, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    status = job.get("status") or {}
    if status.get("succeeded"):
        return "Complete"
    return None


def job_failure_message(job: Obj) -> str:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".rstrip(
                ": "
            )
    return "the job failed"


def last_json_object(log: str | None, accept: Callable[[dict[str, Any]], bool]) -> Obj | None:
    """The last JSON object in a pod log that ``accept`` recognises.

    hearth-trainer prints its report or result as (indented) JSON on stdout; the log may
    hold other lines before and after it.
    """
    text = log or ""
    decoder = json.JSONDecoder()
    start = text.rfind("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict) and accept(value):
            return value
        start = text.rfind("{", 0, start)
    return None
