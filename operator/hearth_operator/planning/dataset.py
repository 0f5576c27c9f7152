"""Dataset: validated once, READY with counts or FAILED with the first errors by line.

A ConfigMap dataset is small and readable through the API, so the operator validates it
itself. Any other source (a PVC, a URL) is readable only from a pod, so validation runs in
a Job whose pod prints the trainer's JSON report; the operator reads it from the pod log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hearth.api import DatasetState

from ..conditions import Cond, set_conditions
from ..constants import LABEL_ACCOUNT, LABEL_DATASET
from ..settings import Settings
from .common import Obj, managed_labels, owner_reference
from .workloads import job_finished, last_json_object, pvc_volumes

MAX_ERRORS = 20


@dataclass
class DatasetPlan:
    job: Obj | None = None
    status: dict[str, Any] = field(default_factory=dict)


def validation_job_name(dataset: str) -> str:
    return f"{dataset}-validate"


def is_settled(dataset: Obj) -> bool:
    """Validated already: the spec is immutable, so the verdict stands."""
    status = dataset.get("status") or {}
    return status.get("state") in (DatasetState.READY.value, DatasetState.FAILED.value) and (
        status.get("observedGeneration") == dataset["metadata"].get("generation")
    )


def render_validation_job(dataset: Obj, settings: Settings) -> Obj:
    metadata = dataset["metadata"]
    spec = dataset["spec"]
    uri = spec["source"]["uri"]
    volumes, mounts = pvc_volumes([uri], settings, read_only=True)
    container = {
        "name": "validate",
        "image": settings.trainer_image,
        "command": list(settings.trainer_command),
        "args": ["validate", uri, "--format", spec.get("format", "CHAT"), "--json"],
        "env": [
            {"name": "HEARTH_PVC_ROOT", "value": settings.pvc_mount_root},
            *({"name": k, "value": v} for k, v in sorted(settings.trainer_env.items())),
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "volumeMounts": mounts,
    }
    labels = managed_labels(
        **{LABEL_DATASET: metadata["name"], LABEL_ACCOUNT: metadata["namespace"]}
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": validation_job_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(dataset)],
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes},
            },
        },
    }


def report_from_log(log: str | None) -> dict[str, Any] | None:
    """The validation report the pod printed, if any."""
    return last_json_object(log, lambda value: "exampleCount" in value)


def status_from_report(dataset: Obj, report: dict[str, Any], now: datetime) -> dict[str, Any]:
    errors: list[dict[str, Any]] = [
        {"line": int(e.get("line") or 0), "message": str(e.get("message", ""))[:1024]}
        for e in report.get("errors", [])[:MAX_ERRORS]
    ]
    valid = bool(report.get("valid", not errors))
    expected = (dataset.get("spec") or {}).get("exampleCount")
    count = int(report.get("exampleCount", 0))
    if valid and expected is not None and expected != count:
        valid = False
        errors.append(
            {
                "line": 0,
                "message": f"spec.exampleCount is {expected} but the file "
                f"has {count} valid examples",
            }
        )
    if valid:
        message = f"{count} examples, about {report.get('estimatedTokenCount', 0)} tokens"
        cond = Cond("Ready", True, "Validated", message)
    else:
        total = report.get("errorCount", len(errors))
        first = "; ".join(
            f"line {e['line']}: {e['message']}" if e["line"] else str(e["message"])
            for e in errors[:3]
        )
        message = f"{total} problem(s): {first}"
        cond = Cond("Ready", False, "InvalidContent", message)
    return _status(
        dataset,
        DatasetState.READY if valid else DatasetState.FAILED,
        cond,
        now,
        exampleCount=count,
        estimatedTokenCount=int(report.get("estimatedTokenCount", 0)),
        averageTurnCount=float(report.get("averageTurnCount", 0.0)),
        errors=errors,
    )


def _status(
    dataset: Obj, state: DatasetState, cond: Cond, now: datetime, **extra: Any
) -> dict[str, Any]:
    generation = dataset["metadata"].get("generation")
    previous = dataset.get("status") or {}
    return {
        "state": state.value,
        "observedGeneration": generation,
        "message": cond.message,
        "conditions": set_conditions(
            previous.get("conditions"), [cond], generation=generation, now=now
        ),
        **extra,
    }


def plan_dataset(
    dataset: Obj,
    *,
    settings: Settings,
    now: datetime,
    config_map: Obj | None = None,
    config_map_report: dict[str, Any] | None = None,
    job: Obj | None = None,
    job_log: str | None = None,
) -> DatasetPlan:
    """What to do next for a Dataset that is not settled yet.

    For a ConfigMap source the caller passes the ConfigMap and the report of validating
    its content; for other sources the validation Job and its pod's log, once finished.
    """
    source = dataset["spec"]["source"]
    if "configMap" in source:
        ref = source["configMap"]
        if config_map is None:
            message = f"ConfigMap {ref['name']} does not exist in this namespace yet"
            cond = Cond("Ready", False, "SourceNotFound", message)
            return DatasetPlan(status=_status(dataset, DatasetState.UPLOADING, cond, now))
        if ref["key"] not in (config_map.get("data") or {}):
            message = f"ConfigMap {ref['name']} has no key {ref['key']!r}"
            cond = Cond("Ready", False, "SourceNotFound", message)
            return DatasetPlan(status=_status(dataset, DatasetState.UPLOADING, cond, now))
        assert config_map_report is not None
        return DatasetPlan(status=status_from_report(dataset, config_map_report, now))
    if job is None:
        cond = Cond("Ready", False, "Validating", "validating the file in a pod")
        return DatasetPlan(
            job=render_validation_job(dataset, settings),
            status=_status(dataset, DatasetState.UPLOADING, cond, now),
        )
    finished = job_finished(job)
    if finished is None:
        cond = Cond("Ready", False, "Validating", "validating the file in a pod")
        return DatasetPlan(status=_status(dataset, DatasetState.UPLOADING, cond, now))
    report = report_from_log(job_log)
    if report is None:
        tail = (job_log or "").strip().splitlines()[-3:]
        detail = " | ".join(tail) if tail else "no output"
        message = f"the validation pod failed without a report: {detail}"
        cond = Cond("Ready", False, "ValidationFailed", message[:2048])
        return DatasetPlan(status=_status(dataset, DatasetState.FAILED, cond, now))
    return DatasetPlan(status=status_from_report(dataset, report, now))
