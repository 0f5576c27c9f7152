"""``hearthctl create|get|list|update|delete|scale deployment``."""

from __future__ import annotations

import argparse

from .. import client
from ..client import Json
from .common import (
    Context,
    Verbs,
    api_command,
    fields_body,
    list_options,
    list_query,
    set_if,
    wait_options,
)
from .crud import Crud
from .output import Column, field, short_id
from .waiting import Target

COLLECTION = "deployments"
NOUN = "deployment"
ALIASES = ("deployments",)

SETTLED = frozenset({"READY"}), frozenset({"FAILED", "DELETED"})


def _replicas(obj: Json) -> str:
    current, desired = obj.get("replicaCount"), obj.get("desiredReplicaCount")
    if current is None and desired is None:
        return ""
    return f"{current or 0}/{desired if desired is not None else '?'}"


COLUMNS: list[Column] = [
    ("NAME", short_id),
    ("BASE MODEL", field("baseModel")),
    ("STATE", field("state")),
    ("REPLICAS", _replicas),
    ("MIN", field("minReplicaCount")),
    ("MAX", field("maxReplicaCount")),
    ("ACCELERATOR", field("acceleratorType")),
    ("CREATED", field("createTime")),
]
# get only: list, update and delete of deployments have options of their own.
CRUD = Crud(
    NOUN,
    COLLECTION,
    COLUMNS,
    get=client.get_deployment,
    list_all=client.list_deployments,
)


def _load_targets(text: str) -> dict[str, float]:
    targets: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"load target {item!r}: use key=value")
        try:
            targets[key] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"load target {item!r}: {value!r} is not a number"
            ) from None
    return targets


def _spec_options(parser: argparse.ArgumentParser) -> None:
    """Fields both create and update set (each sent only when given)."""
    parser.add_argument("--display-name")
    parser.add_argument("--description")
    parser.add_argument("--min-replica-count", type=int)
    parser.add_argument("--max-replica-count", type=int)
    parser.add_argument("--scale-up-window", help="e.g. 30s")
    parser.add_argument("--scale-down-window", help="e.g. 10m")
    parser.add_argument("--scale-to-zero-window", help="e.g. 1h")
    parser.add_argument(
        "--load-targets", type=_load_targets, help="e.g. default=0.8,requests_per_second=5"
    )


#: Option -> (camelCase field path in the body).
_SPEC_FIELDS = {
    "display_name": "displayName",
    "description": "description",
    "min_replica_count": "minReplicaCount",
    "max_replica_count": "maxReplicaCount",
    "scale_up_window": "autoscalingPolicy.scaleUpWindow",
    "scale_down_window": "autoscalingPolicy.scaleDownWindow",
    "scale_to_zero_window": "autoscalingPolicy.scaleToZeroWindow",
    "load_targets": "autoscalingPolicy.loadTargets",
}


def _create(ctx: Context, args: argparse.Namespace) -> int:
    body, _ = fields_body(args, _SPEC_FIELDS)
    body["baseModel"] = ctx.full_name(args.base_model, "models")
    set_if(body, "acceleratorType", args.accelerator_type)
    set_if(body, "acceleratorCount", args.accelerator_count)
    set_if(body, "precision", args.precision)
    set_if(body, "servingEngine", args.serving_engine)
    set_if(body, "maxContextLength", args.max_context_length)
    if args.enable_addons:
        body["enableAddons"] = True
    created = client.create_deployment(
        ctx.conn, body, args.deployment_id, validate_only=args.validate_only
    )
    if args.wait and not args.validate_only:
        account, deployment_id = ctx.ref(str(created.get("name", "")), COLLECTION)
        created = ctx.wait(
            args,
            lambda: client.get_deployment(ctx.conn, deployment_id, account),
            Target(f"deployment {deployment_id}", *SETTLED),
        )
    ctx.show(created)
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    extra = {"showDeleted": "true"} if args.show_deleted else {}
    ctx.show_list(client.list_deployments(ctx.conn, list_query(args, **extra)), COLUMNS)
    return 0


def _update(ctx: Context, args: argparse.Namespace) -> int:
    account, deployment_id = ctx.ref(args.name, COLLECTION)
    body, paths = fields_body(args, _SPEC_FIELDS)
    if not paths:
        raise ValueError("nothing to update: give at least one field option")
    if "autoscalingPolicy" in body:
        # Masks name whole top-level fields on some servers: send the whole policy, the
        # current one with the given fields changed, so the others keep their values.
        current = client.get_deployment(ctx.conn, deployment_id, account)
        policy = dict(current.get("autoscalingPolicy") or {})
        policy.update(body["autoscalingPolicy"])
        body["autoscalingPolicy"] = policy
    mask = list(dict.fromkeys(path.split(".")[0] for path in paths))
    ctx.show(client.update_deployment(ctx.conn, deployment_id, body, mask, account))
    return 0


def _scale(ctx: Context, args: argparse.Namespace) -> int:
    if args.replica_count < 0:
        raise ValueError("--replica-count must be 0 or more")
    account, deployment_id = ctx.ref(args.name, COLLECTION)
    answer = client.scale_deployment(ctx.conn, deployment_id, args.replica_count, account)
    ctx.done(f"deployment {deployment_id} scaling to {args.replica_count} replicas", answer)
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    account, deployment_id = ctx.ref(args.name, COLLECTION)
    answer = client.delete_deployment(
        ctx.conn, deployment_id, hard=args.hard, ignore_checks=args.ignore_checks, account=account
    )
    if args.wait:
        ctx.wait_gone(
            args,
            lambda: client.get_deployment(ctx.conn, deployment_id, account),
            f"deployment {deployment_id}",
        )
    ctx.done(f"deleted deployment {deployment_id}", answer)
    return 0


def register(verbs: Verbs) -> None:
    create = verbs.noun("create", NOUN, aliases=ALIASES, help="create a deployment of a model")
    create.add_argument("base_model", metavar="BASE_MODEL", help="model ID or name to serve")
    create.add_argument("--deployment-id", help="ID of the deployment (generated if absent)")
    _spec_options(create)
    create.add_argument("--accelerator-type", help="e.g. NVIDIA_H100_80GB")
    create.add_argument("--accelerator-count", type=int)
    create.add_argument("--precision", help="e.g. BF16, FP8")
    create.add_argument(
        "--serving-engine",
        choices=("HEARTH", "VLLM"),
        help="model server of the replicas (Hearth extension; VLLM needs a GPU type)",
    )
    create.add_argument("--max-context-length", type=int)
    create.add_argument("--enable-addons", action="store_true", help="allow LoRA addons")
    create.add_argument("--validate-only", action="store_true", help="dry run on the server")
    wait_options(create, timeout="1h")
    api_command(create, _create)

    get = verbs.noun("get", NOUN, aliases=ALIASES, help="show a deployment")
    get.add_argument("name", metavar="DEPLOYMENT")
    api_command(get, CRUD.run_get)

    list_ = verbs.noun("list", NOUN, aliases=ALIASES, help="list deployments")
    list_options(list_)
    list_.add_argument("--show-deleted", action="store_true")
    api_command(list_, _list)

    update = verbs.noun("update", NOUN, aliases=ALIASES, help="change a deployment's fields")
    update.add_argument("name", metavar="DEPLOYMENT")
    _spec_options(update)
    api_command(update, _update)

    scale = verbs.noun("scale", NOUN, aliases=ALIASES, help="set a deployment's replica count")
    scale.add_argument("name", metavar="DEPLOYMENT")
    scale.add_argument("--replica-count", type=int, required=True)
    api_command(scale, _scale)

    delete = verbs.noun("delete", NOUN, aliases=ALIASES, help="delete a deployment")
    delete.add_argument("name", metavar="DEPLOYMENT")
    delete.add_argument("--hard", action="store_true", help="no soft delete")
    delete.add_argument("--ignore-checks", action="store_true", help="even while in use")
    wait_options(delete, timeout="1h")
    api_command(delete, _delete)
