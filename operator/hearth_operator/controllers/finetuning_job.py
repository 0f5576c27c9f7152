"""FineTuningJob reconcile: check, run the trainer Job, publish the output Model."""

from __future__ import annotations

from typing import Any

from hearth.api import FineTuningJobSpec

from ..context import Context, log
from ..planning.common import resolve_ref
from ..planning.finetuning_job import (
    LABEL_FINE_TUNING_JOB,
    FineTuningInputs,
    output_model_id,
    plan_finetuning_job,
    workload_name,
)
from ..planning.workloads import job_finished


def _get_ref(ctx: Context, value: str | None, collection: str, kind: str, namespace: str) -> Any:
    if not value:
        return None
    ref = resolve_ref(value, collection, namespace)
    return ctx.kube.get(kind, ref.name, ref.namespace)


def reconcile_finetuning_job(ctx: Context, namespace: str, name: str) -> None:
    with ctx.reconciling("FineTuningJob", namespace, name):
        job = ctx.kube.get("FineTuningJob", name, namespace)
        if job is None:
            return
        spec = FineTuningJobSpec.model_validate(job.get("spec") or {})
        warm = _get_ref(ctx, spec.warm_start_from, "models", "Model", namespace)
        base_value = spec.base_model
        if warm is not None and not base_value:
            base_ns = warm["metadata"]["namespace"]
            base_value = resolve_ref(
                warm["spec"]["peftDetails"]["baseModel"], "models", base_ns
            ).full_name("models")
        workload = ctx.kube.get("Job", workload_name(name), namespace)
        pods = ctx.kube.list("Pod", namespace, labels={LABEL_FINE_TUNING_JOB: name})
        trainer_log = None
        if workload is not None and job_finished(workload) is not None:
            newest = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
            if newest:
                trainer_log = ctx.kube.read_log(newest[-1]["metadata"]["name"], namespace)
        running = [
            j
            for j in ctx.kube.list("Job", namespace)
            if LABEL_FINE_TUNING_JOB in (j["metadata"].get("labels") or {})
            and j["metadata"]["name"] != workload_name(name)
            and job_finished(j) is None
        ]
        plan = plan_finetuning_job(
            FineTuningInputs(
                job=job,
                settings=ctx.settings,
                now=ctx.clock(),
                dataset=_get_ref(ctx, spec.dataset, "datasets", "Dataset", namespace),
                evaluation_dataset=_get_ref(
                    ctx, spec.evaluation_dataset, "datasets", "Dataset", namespace
                ),
                base_model=_get_ref(ctx, base_value, "models", "Model", namespace),
                warm_start=warm,
                workload=workload,
                pods=pods,
                log=trainer_log,
                output_model=ctx.kube.get("Model", output_model_id(job), namespace),
                account=ctx.kube.get("Account", namespace),
                running_elsewhere=len(running),
            )
        )
        if plan.create_workload is not None:
            ctx.kube.create_if_missing(plan.create_workload)
            log.info("fine-tuning job %s/%s: started the trainer", namespace, name)
        if plan.delete_workload:
            # Foreground-free delete: the Job's pods go with it (owner references).
            ctx.kube.delete("Job", workload_name(name), namespace)
            for pod in pods:
                ctx.kube.delete("Pod", pod["metadata"]["name"], namespace)
        if plan.create_model is not None:
            ctx.kube.create_if_missing(plan.create_model)
        for type_, reason, message in plan.events:
            ctx.event(job, type_, reason, message)
        ctx.write_status(job, plan.status)
