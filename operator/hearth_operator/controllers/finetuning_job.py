"""FineTuningJob reconcile: check, run the trainer Job, publish the output Model."""

from __future__ import annotations

from typing import Any

from hearth.api import FineTuningJobSpec

from ..constants import LABEL_FINE_TUNING_JOB
from ..context import Context, log
from ..planning.common import resolve_ref
from ..planning.finetuning_job import (
    FineTuningInputs,
    log_source,
    output_model_id,
    plan_finetuning_job,
    running_elsewhere,
    tuned_base_ref,
    workload_name,
)


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
        base_ref = tuned_base_ref(spec, namespace, warm)
        workload = ctx.kube.get("Job", workload_name(name), namespace)
        pods = ctx.kube.list("Pod", namespace, labels={LABEL_FINE_TUNING_JOB: name})
        log_pod = log_source(workload, pods)
        trainer_log = ctx.kube.read_log(log_pod, namespace) if log_pod else None
        plan = plan_finetuning_job(
            FineTuningInputs(
                job=job,
                settings=ctx.settings,
                now=ctx.clock(),
                dataset=_get_ref(ctx, spec.dataset, "datasets", "Dataset", namespace),
                evaluation_dataset=_get_ref(
                    ctx, spec.evaluation_dataset, "datasets", "Dataset", namespace
                ),
                base_model=(
                    ctx.kube.get("Model", base_ref.name, base_ref.namespace) if base_ref else None
                ),
                warm_start=warm,
                workload=workload,
                pods=pods,
                log=trainer_log,
                output_model=ctx.kube.get("Model", output_model_id(job), namespace),
                account=ctx.kube.get("Account", namespace),
                running_elsewhere=running_elsewhere(ctx.kube.list("Job", namespace), name),
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
