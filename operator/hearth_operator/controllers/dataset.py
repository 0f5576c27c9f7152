"""Dataset reconcile: validate once (in-process for a ConfigMap, else in a Job)."""

from __future__ import annotations

from hearth.datasets import check_format, validate_lines

from ..constants import LABEL_DATASET
from ..context import Context
from ..planning.dataset import is_settled, plan_dataset, validation_job_name
from ..planning.workloads import job_finished


def reconcile_dataset(ctx: Context, namespace: str, name: str) -> None:
    with ctx.reconciling("Dataset", namespace, name):
        dataset = ctx.kube.get("Dataset", name, namespace)
        if dataset is None or is_settled(dataset):
            return
        source = dataset["spec"]["source"]
        config_map = report = job = log = None
        if "configMap" in source:
            ref = source["configMap"]
            config_map = ctx.kube.get("ConfigMap", ref["name"], namespace)
            text = ((config_map or {}).get("data") or {}).get(ref["key"])
            if text is not None:
                # The shared, torch-free rules: the same validation the trainer runs.
                fmt = check_format(dataset["spec"].get("format", "CHAT"))
                validated, _ = validate_lines(text.splitlines(), fmt)
                report = validated.to_json()
        else:
            job = ctx.kube.get("Job", validation_job_name(name), namespace)
            if job is not None and job_finished(job) is not None:
                pods = ctx.kube.list("Pod", namespace, labels={LABEL_DATASET: name})
                for pod in pods:
                    log = ctx.kube.read_log(pod["metadata"]["name"], namespace)
                    if log:
                        break
        plan = plan_dataset(
            dataset,
            settings=ctx.settings,
            now=ctx.clock(),
            config_map=config_map,
            config_map_report=report,
            job=job,
            job_log=log,
        )
        if plan.job is not None:
            ctx.kube.create_if_missing(plan.job)
        previous = (dataset.get("status") or {}).get("state")
        ctx.write_status(dataset, plan.status)
        state = plan.status["state"]
        if previous != state and state in ("READY", "FAILED"):
            ctx.event(
                dataset,
                "Normal" if state == "READY" else "Warning",
                state.title(),
                plan.status["message"],
            )
