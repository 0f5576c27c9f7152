"""``hearthctl create|get|list|delete|cancel|resume sftj`` (supervised fine-tuning jobs).

``create sftj --wait`` shows the job's progress from its status (state, epoch, step,
loss, percent) until it completes.
"""

from __future__ import annotations

import argparse

from .. import client
from ..client import Json
from .common import Context, Verbs, api_command, list_options, set_if, wait_options
from .crud import Crud
from .output import Column, field, short_id
from .waiting import Target, status_message

COLLECTION = "supervisedFineTuningJobs"
NOUN = "sftj"
ALIASES = ("supervised-fine-tuning-job", "supervised-fine-tuning-jobs", "sftjs")
SUCCEEDED = frozenset({"JOB_STATE_COMPLETED", "JOB_STATE_EARLY_STOPPED"})
FAILED = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})


def _percent(obj: Json) -> str:
    percent = field("jobProgress.percent")(obj)
    return f"{float(percent):.0f}%" if isinstance(percent, int | float) else ""


COLUMNS: list[Column] = [
    ("NAME", short_id),
    ("STATE", field("state")),
    ("BASE MODEL", field("baseModel")),
    ("DATASET", field("dataset")),
    ("OUTPUT MODEL", field("outputModel")),
    ("PROGRESS", _percent),
    ("CREATED", field("createTime")),
]
CRUD = Crud(
    "sftj",
    COLLECTION,
    COLUMNS,
    get=client.get_sft_job,
    list_all=client.list_sft_jobs,
    delete=client.delete_sft_job,
)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def describe_progress(job: Json) -> str:
    """One progress line: ``RUNNING  epoch 1/3  step 40/120  loss 1.2345  33%``.

    Reads Fireworks' ``jobProgress`` (percent, epoch) and Hearth's additions to it (step,
    totalSteps, trainLoss, evalLoss); a field not reported yet is left out.
    """
    state = str(job.get("state") or "JOB_STATE_UNSPECIFIED").removeprefix("JOB_STATE_")
    progress = job.get("jobProgress")
    progress = progress if isinstance(progress, dict) else {}
    parts = [state]
    epoch, epochs = _number(progress.get("epoch")), _number(job.get("epochs"))
    if epoch is not None:
        parts.append(f"epoch {epoch:g}/{epochs:g}" if epochs else f"epoch {epoch:g}")
    step, total = _number(progress.get("step")), _number(progress.get("totalSteps"))
    if step is not None:
        parts.append(f"step {step:g}/{total:g}" if total else f"step {step:g}")
    for key, label in (("trainLoss", "loss"), ("evalLoss", "eval loss")):
        loss = _number(progress.get(key))
        if loss is not None:
            parts.append(f"{label} {loss:.4f}")
    percent = _number(progress.get("percent"))
    if percent is not None:
        parts.append(f"{percent:.0f}%")
    message = status_message(job)
    if message and state not in ("RUNNING",):
        parts.append(f"({message})")
    return "  ".join(parts)


def _create(ctx: Context, args: argparse.Namespace) -> int:
    if bool(args.base_model) == bool(args.warm_start_from):
        raise ValueError("give exactly one of --base-model and --warm-start-from")
    body: Json = {"dataset": ctx.full_name(args.dataset, "datasets")}
    if args.base_model:
        body["baseModel"] = ctx.full_name(args.base_model, "models")
    else:
        body["warmStartFrom"] = ctx.full_name(args.warm_start_from, "models")
    set_if(body, "outputModel", args.output_model)
    if args.evaluation_dataset:
        body["evaluationDataset"] = ctx.full_name(args.evaluation_dataset, "datasets")
    for option, key in (
        ("display_name", "displayName"),
        ("epochs", "epochs"),
        ("learning_rate", "learningRate"),
        ("learning_rate_warmup_steps", "learningRateWarmupSteps"),
        ("lora_rank", "loraRank"),
        ("max_context_length", "maxContextLength"),
        ("batch_size", "batchSize"),
        ("gradient_accumulation_steps", "gradientAccumulationSteps"),
        ("eval_auto_carveout", "evalAutoCarveout"),
        ("early_stop", "earlyStop"),
    ):
        set_if(body, key, getattr(args, option))
    created = client.create_sft_job(ctx.conn, body, args.job_id)
    if args.wait:
        account, job_id = ctx.ref(str(created.get("name", "")), COLLECTION)
        created = ctx.wait(
            args,
            lambda: client.get_sft_job(ctx.conn, job_id, account),
            Target(f"sftj {job_id}", SUCCEEDED, FAILED),
            describe=describe_progress,
        )
    ctx.show(created)
    return 0


def _cancel(ctx: Context, args: argparse.Namespace) -> int:
    account, job_id = ctx.ref(args.name, COLLECTION)
    ctx.done(f"cancelling sftj {job_id}", client.cancel_sft_job(ctx.conn, job_id, account))
    return 0


def _resume(ctx: Context, args: argparse.Namespace) -> int:
    account, job_id = ctx.ref(args.name, COLLECTION)
    ctx.done(f"resuming sftj {job_id}", client.resume_sft_job(ctx.conn, job_id, account))
    return 0


def register(verbs: Verbs) -> None:
    create = verbs.noun("create", NOUN, aliases=ALIASES, help="start a fine-tuning job")
    create.add_argument("--dataset", required=True, help="training dataset (ID or name)")
    create.add_argument("--base-model", help="model to tune")
    create.add_argument("--warm-start-from", help="LoRA model to continue training")
    create.add_argument("--output-model", help="ID of the resulting model (default: job ID)")
    create.add_argument("--job-id", help="ID of the job (generated if absent)")
    create.add_argument("--display-name")
    create.add_argument("--evaluation-dataset")
    create.add_argument("--epochs", type=int)
    create.add_argument("--learning-rate", type=float)
    create.add_argument("--learning-rate-warmup-steps", type=int)
    create.add_argument("--lora-rank", type=int)
    create.add_argument("--max-context-length", type=int)
    create.add_argument("--batch-size", type=int, help="tokens per batch")
    create.add_argument("--gradient-accumulation-steps", type=int)
    create.add_argument("--eval-auto-carveout", action=argparse.BooleanOptionalAction, default=None)
    create.add_argument("--early-stop", action=argparse.BooleanOptionalAction, default=None)
    wait_options(create, timeout="24h")
    api_command(create, _create)

    for verb, handler, text in (
        ("get", CRUD.run_get, "show a fine-tuning job"),
        ("delete", CRUD.run_delete, "delete a fine-tuning job"),
        ("cancel", _cancel, "cancel a running fine-tuning job"),
        ("resume", _resume, "resume a failed or cancelled fine-tuning job"),
    ):
        parser = verbs.noun(verb, NOUN, aliases=ALIASES, help=text)
        parser.add_argument("name", metavar="JOB")
        api_command(parser, handler)

    list_ = verbs.noun("list", NOUN, aliases=ALIASES, help="list fine-tuning jobs")
    list_options(list_)
    api_command(list_, CRUD.run_list)
