"""FineTuningJob: checks across objects, a batch/v1 Job running hearth-trainer, the output Model.

The trainer writes ``<output>/adapter`` atomically and reports progress into
``status.jobProgress`` itself; the operator owns every other status field. The output
Model is created only after the Job completed, is not owned by the job (deleting the job
keeps the model), and carries a label naming the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hearth.api import (
    API_VERSION,
    DatasetState,
    FineTuningJobSpec,
    JobState,
    ModelKind,
    ModelState,
)

from ..conditions import Cond, format_time, set_conditions
from ..constants import (
    ACCOUNT_ARTIFACT_CLAIM,
    ANNOTATION_ACCELERATOR_TYPE,
    LABEL_ACCOUNT,
    LABEL_FINE_TUNING_JOB,
)
from ..settings import Settings
from .common import Obj, Ref, is_terminating, managed_labels, owner_reference, resolve_ref
from .workloads import (
    accelerator_placement,
    job_failure_message,
    job_finished,
    last_json_object,
    pvc_volumes,
)

FINAL_STATES = {
    JobState.JOB_STATE_COMPLETED.value,
    JobState.JOB_STATE_EARLY_STOPPED.value,
    JobState.JOB_STATE_FAILED.value,
    JobState.JOB_STATE_CANCELLED.value,
}


@dataclass(frozen=True)
class FineTuningInputs:
    job: Obj
    settings: Settings
    now: datetime
    dataset: Obj | None = None
    evaluation_dataset: Obj | None = None
    base_model: Obj | None = None
    #: The warm-start addon, when the spec names one.
    warm_start: Obj | None = None
    #: The batch/v1 Job running the trainer, and its pods.
    workload: Obj | None = None
    pods: list[Obj] = field(default_factory=list)
    #: The trainer pod's log once the Job finished (its last line is the result JSON).
    log: str | None = None
    #: The Model named by outputModel, if it exists.
    output_model: Obj | None = None
    account: Obj | None = None
    #: Other FineTuningJobs of the account that are running now.
    running_elsewhere: int = 0


@dataclass
class FineTuningPlan:
    create_workload: Obj | None = None
    delete_workload: bool = False
    create_model: Obj | None = None
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def workload_name(job: str) -> str:
    return f"{job}-train"


def output_dir(job: Obj, settings: Settings) -> str:
    return (
        f"{settings.pvc_mount_root}/{ACCOUNT_ARTIFACT_CLAIM}/fine-tuning/{job['metadata']['name']}"
    )


def adapter_uri(job: Obj) -> str:
    return f"pvc://{ACCOUNT_ARTIFACT_CLAIM}/fine-tuning/{job['metadata']['name']}/adapter"


def output_model_id(job: Obj) -> str:
    return str((job.get("spec") or {}).get("outputModel") or job["metadata"]["name"])


def _source_uri(model: Obj) -> str:
    return str((model.get("spec") or {})["source"]["uri"])


def _dataset_uri(dataset: Obj, settings: Settings) -> str:
    source = dataset["spec"]["source"]
    if "uri" in source:
        return str(source["uri"])
    ref = source["configMap"]
    # ConfigMaps are mounted as files by the pod spec below.
    return f"file://{settings.dataset_mount_root}/{dataset['metadata']['name']}/{ref['key']}"


def check(inputs: FineTuningInputs, spec: FineTuningJobSpec) -> tuple[str, str, str] | None:
    """(state, reason, message) when the job cannot start (yet), else None."""
    namespace = inputs.job["metadata"]["namespace"]
    dataset_name = resolve_ref(spec.dataset, "datasets", namespace).full_name("datasets")
    waiting = JobState.JOB_STATE_PENDING.value
    failed = JobState.JOB_STATE_FAILED.value
    for label, dataset, name in (
        ("dataset", inputs.dataset, dataset_name),
        ("evaluationDataset", inputs.evaluation_dataset, spec.evaluation_dataset),
    ):
        if name is None:
            continue
        if dataset is None:
            return waiting, "DatasetNotFound", f"{label} {name} does not exist"
        state = (dataset.get("status") or {}).get("state")
        if state == DatasetState.FAILED.value:
            return (
                failed,
                "DatasetInvalid",
                f"{label} {name} failed validation: "
                + str((dataset.get("status") or {}).get("message", "")),
            )
        if state != DatasetState.READY.value:
            return waiting, "DatasetNotReady", f"{label} {name} is {state or 'not validated yet'}"
    base_ref = resolve_ref(spec.base_model or "", "models", namespace) if spec.base_model else None
    if spec.warm_start_from:
        ref = resolve_ref(spec.warm_start_from, "models", namespace)
        shown = ref.full_name("models")
        warm = inputs.warm_start
        if warm is None:
            return waiting, "ModelNotFound", f"warmStartFrom {shown} does not exist"
        warm_spec = warm.get("spec") or {}
        if warm_spec.get("kind", ModelKind.HF_PEFT_ADDON.value) != ModelKind.HF_PEFT_ADDON.value:
            return failed, "NotAnAddon", f"warmStartFrom {shown} is not a LoRA addon"
        if (warm.get("status") or {}).get("state") != ModelState.READY.value:
            return waiting, "ModelNotReady", f"warmStartFrom {shown} is not READY"
        base_ref = resolve_ref(warm_spec["peftDetails"]["baseModel"], "models", ref.namespace)
    assert base_ref is not None  # the CRD requires baseModel or warmStartFrom
    shown = base_ref.full_name("models")
    base = inputs.base_model
    if base is None:
        return waiting, "ModelNotFound", f"base model {shown} does not exist"
    base_spec = base.get("spec") or {}
    if base_spec.get("kind", ModelKind.HF_PEFT_ADDON.value) != ModelKind.HF_BASE_MODEL.value:
        return failed, "NotABaseModel", f"{shown} is not an HF_BASE_MODEL"
    if not base_spec.get("supportsLora", True) or not base_spec.get("tunable", True):
        return failed, "NotTunable", f"base model {shown} does not support LoRA fine-tuning"
    if (base.get("status") or {}).get("state") != ModelState.READY.value:
        return waiting, "ModelNotReady", f"base model {shown} is not READY"
    existing = inputs.output_model
    if existing is not None:
        labels = existing["metadata"].get("labels") or {}
        if labels.get(LABEL_FINE_TUNING_JOB) != inputs.job["metadata"]["name"]:
            return (
                failed,
                "OutputModelExists",
                (f"model {output_model_id(inputs.job)} already exists; choose another outputModel"),
            )
    quota = (((inputs.account or {}).get("spec") or {}).get("quota") or {}).get(
        "concurrentFineTuningJobs"
    )
    if quota is not None and inputs.workload is None and inputs.running_elsewhere >= quota:
        return (
            waiting,
            "QuotaExceeded",
            (
                f"{inputs.running_elsewhere} fine-tuning jobs are running; "
                f"the account allows {quota}"
            ),
        )
    return None


def tuned_base_ref(spec: FineTuningJobSpec, namespace: str, warm_start: Obj | None) -> Ref | None:
    """The base model a job tunes: ``baseModel``, or the base of the ``warmStartFrom`` addon
    (the CRD requires exactly one); None while the warm start is missing or no addon."""
    if spec.base_model:
        return resolve_ref(spec.base_model, "models", namespace)
    if warm_start is None:
        return None
    peft = (warm_start.get("spec") or {}).get("peftDetails") or {}
    try:
        return resolve_ref(peft.get("baseModel", ""), "models", warm_start["metadata"]["namespace"])
    except ValueError:
        return None


def log_source(workload: Obj | None, pods: list[Obj]) -> str | None:
    """The pod whose log holds the trainer's result: the newest, once the Job finished."""
    if workload is None or job_finished(workload) is None or not pods:
        return None
    newest = max(
        pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
    )
    return str(newest["metadata"]["name"])


def running_elsewhere(trainer_jobs: list[Obj], job: str) -> int:
    """Trainer Jobs of other FineTuningJobs still running (the account's concurrency quota)."""
    return sum(
        1
        for j in trainer_jobs
        if LABEL_FINE_TUNING_JOB in (j["metadata"].get("labels") or {})
        and j["metadata"]["name"] != workload_name(job)
        and job_finished(j) is None
    )


def render_workload(inputs: FineTuningInputs, spec: FineTuningJobSpec) -> Obj:
    """The batch/v1 Job: one pod running ``hearth-trainer train`` with the spec's settings."""
    job, settings = inputs.job, inputs.settings
    metadata = job["metadata"]
    assert inputs.dataset is not None and inputs.base_model is not None
    args = [
        "train",
        "--base-model", _source_uri(inputs.base_model),
        "--dataset", _dataset_uri(inputs.dataset, settings),
        "--format", inputs.dataset["spec"].get("format", "CHAT"),
        "--output", output_dir(job, settings),
        "--epochs", str(spec.epochs),
        "--learning-rate", repr(spec.learning_rate),
        "--learning-rate-warmup-steps", str(spec.learning_rate_warmup_steps),
        "--lora-rank", str(spec.lora_rank),
        "--max-context-length", str(spec.max_context_length),
        "--batch-size", str(spec.batch_size),
        "--gradient-accumulation-steps", str(spec.gradient_accumulation_steps),
        "--optimizer-weight-decay", repr(spec.optimizer_weight_decay),
        "--seed", str(spec.seed),
    ]  # fmt: skip
    if spec.lora_alpha is not None:
        args += ["--lora-alpha", str(spec.lora_alpha)]
    if spec.batch_size_samples is not None:
        args += ["--batch-size-samples", str(spec.batch_size_samples)]
    if spec.early_stop:
        args.append("--early-stop")
    if not spec.eval_auto_carveout:
        args.append("--no-eval-auto-carveout")
    uris = [_dataset_uri(inputs.dataset, settings), _source_uri(inputs.base_model)]
    if inputs.evaluation_dataset is not None:
        uri = _dataset_uri(inputs.evaluation_dataset, settings)
        args += ["--evaluation-dataset", uri]
        uris.append(uri)
    if inputs.warm_start is not None:
        args += ["--warm-start-from", _source_uri(inputs.warm_start)]
        uris.append(_source_uri(inputs.warm_start))
    volumes, mounts = pvc_volumes(uris, settings, read_only=False)
    for dataset in (inputs.dataset, inputs.evaluation_dataset):
        if dataset is not None and "configMap" in dataset["spec"]["source"]:
            name = dataset["metadata"]["name"]
            volumes.append(
                {
                    "name": f"dataset-{name}",
                    "configMap": {"name": dataset["spec"]["source"]["configMap"]["name"]},
                }
            )
            mounts.append(
                {
                    "name": f"dataset-{name}",
                    "readOnly": True,
                    "mountPath": f"{settings.dataset_mount_root}/{name}",
                }
            )
    count = spec.accelerator_count
    if count is None:
        count = 0 if spec.accelerator_type.value == "CPU" else 1
    resources, placement = accelerator_placement(spec.accelerator_type.value, count, settings)
    labels = managed_labels(
        **{LABEL_FINE_TUNING_JOB: metadata["name"], LABEL_ACCOUNT: metadata["namespace"]}
    )
    container = {
        "name": "trainer",
        "image": settings.trainer_image,
        "command": list(settings.trainer_command),
        "args": args,
        "env": [
            {"name": "HEARTH_JOB_NAMESPACE", "value": metadata["namespace"]},
            {"name": "HEARTH_JOB_NAME", "value": metadata["name"]},
            {"name": "HEARTH_PVC_ROOT", "value": settings.pvc_mount_root},
            {"name": "HEARTH_CACHE_DIR", "value": settings.model_cache_path},
            *({"name": k, "value": v} for k, v in sorted(settings.trainer_env.items())),
        ],
        "resources": resources,
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": workload_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": labels,
            "annotations": {ANNOTATION_ACCELERATOR_TYPE: spec.accelerator_type.value},
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            # A restarted pod resumes from the trainer's last checkpoint.
            "backoffLimit": settings.trainer_backoff_limit,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {ANNOTATION_ACCELERATOR_TYPE: spec.accelerator_type.value},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": volumes,
                    **placement,
                },
            },
        },
    }


def render_output_model(inputs: FineTuningInputs, spec: FineTuningJobSpec) -> Obj:
    job = inputs.job
    metadata = job["metadata"]
    base = tuned_base_ref(spec, metadata["namespace"], inputs.warm_start)
    assert base is not None  # the output Model is made only after check() passed
    base_value = base.name if base.namespace == metadata["namespace"] else base.full_name("models")
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {
            "name": output_model_id(job),
            "namespace": metadata["namespace"],
            "labels": managed_labels(**{LABEL_FINE_TUNING_JOB: metadata["name"]}),
        },
        "spec": {
            "kind": ModelKind.HF_PEFT_ADDON.value,
            "displayName": (spec.display_name or f"Fine-tuned by {metadata['name']}")[:63],
            "source": {"uri": adapter_uri(job)},
            "peftDetails": {"baseModel": base_value, "r": spec.lora_rank},
        },
    }


def result_from_log(log: str | None) -> dict[str, Any] | None:
    """The trainer's final result JSON, if the log holds one."""
    return last_json_object(log, lambda value: value.get("status") == "completed")


def _pod_start(pods: list[Obj]) -> str | None:
    starts = sorted(p.get("status", {}).get("startTime") or "" for p in pods)
    return next((s for s in starts if s), None)


def plan_finetuning_job(inputs: FineTuningInputs) -> FineTuningPlan:
    job, now = inputs.job, inputs.now
    metadata = job["metadata"]
    generation = metadata.get("generation")
    previous = job.get("status") or {}
    plan = FineTuningPlan()

    def finish(state: JobState, cond: Cond, **extra: Any) -> FineTuningPlan:
        plan.status = {
            "state": state.value,
            "observedGeneration": generation,
            "message": cond.message if cond.status is not True else extra.pop("note", ""),
            "conditions": set_conditions(
                previous.get("conditions"), [cond], generation=generation, now=now
            ),
            **{k: v for k, v in extra.items() if v is not None},
        }
        if previous.get("state") != state.value and state.value in FINAL_STATES | {
            JobState.JOB_STATE_RUNNING.value
        }:
            kind = "Warning" if state == JobState.JOB_STATE_FAILED else "Normal"
            plan.events.append((kind, state.value.removeprefix("JOB_STATE_").title(), cond.message))
        return plan

    if previous.get("state") in FINAL_STATES and not is_terminating(job):
        plan.status = dict(previous, observedGeneration=generation)
        return plan  # a finished job stays as it ended
    spec = FineTuningJobSpec.model_validate(job.get("spec") or {})
    workload = inputs.workload
    started = previous.get("startTime") or _pod_start(inputs.pods)

    if spec.cancelled:
        if workload is not None:
            plan.delete_workload = True
            return finish(
                JobState.JOB_STATE_CANCELLING,
                Cond("Succeeded", False, "Cancelling", "stopping the trainer"),
                startTime=started,
            )
        return finish(
            JobState.JOB_STATE_CANCELLED,
            Cond("Succeeded", False, "Cancelled", "cancelled by the user"),
            startTime=started,
            completedTime=format_time(now),
        )

    if workload is None:
        problem = check(inputs, spec)
        if problem is not None:
            state, reason, message = problem
            return finish(
                JobState(state),
                Cond("Succeeded", False, reason, message),
                completedTime=format_time(now) if state in FINAL_STATES else None,
            )
        plan.create_workload = render_workload(inputs, spec)
        return finish(
            JobState.JOB_STATE_PENDING,
            Cond("Succeeded", False, "Scheduled", "waiting for the trainer pod"),
            outputModel=None,
        )

    outcome = job_finished(workload)
    output_name = Ref(metadata["namespace"], output_model_id(job)).full_name("models")
    if outcome == "Failed":
        reason = _failure_reason(inputs)
        return finish(
            JobState.JOB_STATE_FAILED,
            Cond("Succeeded", False, "TrainerFailed", reason),
            startTime=started,
            completedTime=format_time(now),
        )
    if outcome == "Complete":
        result = result_from_log(inputs.log)
        truncated = result.get("truncatedExampleCount") if result else None
        early = bool(result and result.get("stoppedEarly"))
        if inputs.output_model is None:
            plan.create_model = render_output_model(inputs, spec)
            return finish(
                JobState.JOB_STATE_WRITING_RESULTS,
                Cond("Succeeded", False, "WritingResults", f"creating {output_name}"),
                startTime=started,
                outputModel=output_name,
                truncatedExampleCount=truncated,
            )
        state = JobState.JOB_STATE_EARLY_STOPPED if early else JobState.JOB_STATE_COMPLETED
        note = "stopped early: evaluation loss stopped improving" if early else ""
        return finish(
            state,
            Cond("Succeeded", True, "Completed", f"produced {output_name}"),
            note=note,
            startTime=started,
            completedTime=format_time(now),
            outputModel=output_name,
            truncatedExampleCount=truncated,
        )
    running = any(p.get("status", {}).get("phase") == "Running" for p in inputs.pods)
    if running:
        return finish(
            JobState.JOB_STATE_RUNNING,
            Cond("Succeeded", False, "Training", "the trainer is running"),
            startTime=started,
        )
    return finish(
        JobState.JOB_STATE_PENDING,
        Cond("Succeeded", False, "Scheduled", "waiting for the trainer pod"),
    )


def _failure_reason(inputs: FineTuningInputs) -> str:
    """The trainer's own last words, else the pod's termination, else the Job's condition."""
    lines = [line for line in (inputs.log or "").strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    if errors:
        return errors[-1][-1024:]
    for pod in inputs.pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated and terminated.get("exitCode"):
                detail = terminated.get("message") or (lines[-1] if lines else "")
                return f"trainer exited with code {terminated['exitCode']}: {detail}"[:1024]
    if inputs.workload is not None:
        return job_failure_message(inputs.workload)
    return "the training job failed"
