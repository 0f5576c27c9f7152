"""``hearthctl load-lora|unload-lora`` and ``get|list|update|create|delete deployed-model``.

Loading a LoRA is creating a deployed model (``{model, deployment}``); unloading is
deleting it. ``unload-lora`` takes the model (and ``--deployment`` when it is loaded on
several) and finds the deployed model itself, as firectl does.
"""

from __future__ import annotations

import argparse

from .. import client
from ..client import Json, ListQuery
from .common import (
    Context,
    Verbs,
    api_command,
    fields_body,
    list_options,
    wait_options,
)
from .crud import Crud
from .output import Column, field, short_id
from .waiting import Target

COLLECTION = "deployedModels"
NOUN = "deployed-model"
ALIASES = ("deployed-models",)
SETTLED = frozenset({"DEPLOYED"}), frozenset({"FAILED"})

COLUMNS: list[Column] = [
    ("NAME", short_id),
    ("MODEL", field("model")),
    ("DEPLOYMENT", field("deployment")),
    ("STATE", field("state")),
    ("DEFAULT", field("default")),
    ("PUBLIC", field("public")),
]

_FIELDS = {
    "display_name": "displayName",
    "description": "description",
    "default": "default",
    "public": "public",
}

CRUD = Crud(
    NOUN,
    COLLECTION,
    COLUMNS,
    get=client.get_deployed_model,
    list_all=client.list_deployed_models,
    update=client.update_deployed_model,
    fields=_FIELDS,
)


def _load(ctx: Context, args: argparse.Namespace) -> int:
    body: Json = {
        "model": ctx.full_name(args.model, "models"),
        "deployment": ctx.full_name(args.deployment, "deployments"),
    }
    fields, _ = fields_body(args, {"display_name": "displayName", "public": "public"})
    body.update(fields)
    created = client.load_lora(ctx.conn, body, replace_merged_addon=args.replace_merged_addon)
    if args.wait:
        account, deployed_id = ctx.ref(str(created.get("name", "")), COLLECTION)
        created = ctx.wait(
            args,
            lambda: client.get_deployed_model(ctx.conn, deployed_id, account),
            Target(f"deployed model {deployed_id}", *SETTLED),
        )
    ctx.show(created)
    return 0


def find_deployed_model(deployed: list[Json], model: str, deployment: str | None) -> Json:
    """The one deployed model of ``model`` (on ``deployment`` when given); full names."""
    matches = [
        item
        for item in deployed
        if item.get("model") == model and deployment in (None, item.get("deployment"))
    ]
    where = f" on {deployment}" if deployment else ""
    if not matches:
        raise ValueError(f"{model} is not loaded{where}")
    if len(matches) > 1:
        places = ", ".join(sorted(str(item.get("deployment")) for item in matches))
        raise ValueError(f"{model} is loaded on several deployments ({places}): give --deployment")
    return matches[0]


def _unload(ctx: Context, args: argparse.Namespace) -> int:
    if "/deployedModels/" in args.model or getattr(args, "by_id", False):
        account, deployed_id = ctx.ref(args.model, COLLECTION)
    else:
        model = ctx.full_name(args.model, "models")
        deployment = ctx.full_name(args.deployment, "deployments") if args.deployment else None
        found = find_deployed_model(
            list(client.list_deployed_models(ctx.conn, ListQuery())), model, deployment
        )
        account, deployed_id = ctx.ref(str(found.get("name", "")), COLLECTION)
    answer = client.unload_lora(ctx.conn, deployed_id, account)
    if args.wait:
        ctx.wait_gone(
            args,
            lambda: client.get_deployed_model(ctx.conn, deployed_id, account),
            f"deployed model {deployed_id}",
        )
    ctx.done(f"unloaded deployed model {deployed_id}", answer)
    return 0


def _load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="the LoRA model (ID or name)")
    parser.add_argument("--deployment", required=True, help="deployment (ID or name)")
    parser.add_argument("--public", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--display-name")
    parser.add_argument(
        "--replace-merged-addon", action="store_true", help="for hot-reload deployments"
    )
    wait_options(parser, timeout="30m")


def register(verbs: Verbs) -> None:
    load = verbs.command("load-lora", help="load a LoRA model onto a deployment")
    _load_options(load)
    api_command(load, _load)
    create = verbs.noun("create", NOUN, aliases=ALIASES, help="load a LoRA (as load-lora)")
    _load_options(create)
    api_command(create, _load)

    unload = verbs.command("unload-lora", help="unload a LoRA model from a deployment")
    unload.add_argument("model", metavar="MODEL", help="the LoRA model, or a deployed model name")
    unload.add_argument("--deployment", help="when the model is loaded on several")
    wait_options(unload, timeout="30m")
    api_command(unload, _unload)
    delete = verbs.noun("delete", NOUN, aliases=ALIASES, help="unload a deployed model by ID")
    delete.add_argument("model", metavar="DEPLOYED_MODEL")
    delete.set_defaults(by_id=True, deployment=None)
    wait_options(delete, timeout="30m")
    api_command(delete, _unload)

    get = verbs.noun("get", NOUN, aliases=ALIASES, help="show a deployed model")
    get.add_argument("name", metavar="DEPLOYED_MODEL")
    api_command(get, CRUD.run_get)

    list_ = verbs.noun("list", NOUN, aliases=ALIASES, help="list deployed models")
    list_options(list_)
    api_command(list_, CRUD.run_list)

    update = verbs.noun("update", NOUN, aliases=ALIASES, help="change a deployed model")
    update.add_argument("name", metavar="DEPLOYED_MODEL")
    update.add_argument("--default", action=argparse.BooleanOptionalAction, default=None)
    update.add_argument("--public", action=argparse.BooleanOptionalAction, default=None)
    update.add_argument("--display-name")
    update.add_argument("--description")
    api_command(update, CRUD.run_update)
