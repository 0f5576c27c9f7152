"""``hearthctl create|get|list|update|delete model``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import client
from ..client import Json
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
from .uploads import files_to_upload, upload
from .waiting import Target

COLLECTION = "models"
NOUN = "model"
ALIASES = ("models",)
SETTLED = frozenset({"READY"}), frozenset({"FAILED"})

COLUMNS: list[Column] = [
    ("NAME", short_id),
    ("KIND", field("kind")),
    ("STATE", field("state")),
    ("BASE MODEL", field("peftDetails.baseModel")),
    ("PUBLIC", field("public")),
    ("CREATED", field("createTime")),
]

_FIELDS = {
    "display_name": "displayName",
    "description": "description",
    "public": "public",
    "context_length": "contextLength",
    "supports_tools": "supportsTools",
}

CRUD = Crud(
    "model",
    COLLECTION,
    COLUMNS,
    get=client.get_model,
    list_all=client.list_models,
    update=client.update_model,
    delete=client.delete_model,
    fields=_FIELDS,
)


def _field_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--display-name")
    parser.add_argument("--description")
    parser.add_argument("--public", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--context-length", type=int)
    parser.add_argument("--supports-tools", action=argparse.BooleanOptionalAction, default=None)


def _adapter_details(directory: Path | None) -> Json:
    """``r`` and ``targetModules`` from a PEFT ``adapter_config.json``, when there is one."""
    if directory is None or not (directory / "adapter_config.json").is_file():
        return {}
    config = json.loads((directory / "adapter_config.json").read_text())
    details: Json = {}
    if isinstance(config.get("r"), int):
        details["r"] = config["r"]
    modules = config.get("target_modules")
    if isinstance(modules, list):
        details["targetModules"] = [str(module) for module in modules]
    return details


def model_body(ctx: Context, args: argparse.Namespace, path: Path | None) -> Json:
    body, _ = fields_body(args, _FIELDS)
    if args.base_model:
        peft: Json = {"baseModel": ctx.full_name(args.base_model, COLLECTION)}
        peft.update(_adapter_details(path if path and path.is_dir() else None))
        if args.lora_rank is not None:
            peft["r"] = args.lora_rank
        body["kind"] = "HF_PEFT_ADDON"
        body["peftDetails"] = peft
    else:
        body["kind"] = "HF_BASE_MODEL"
    if args.source:
        body["source"] = {"uri": args.source}
    return body


def _create(ctx: Context, args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else None
    files = files_to_upload(path) if path is not None else None
    account, model_id = ctx.ref(args.model_id, COLLECTION)
    created = client.create_model(ctx.conn, model_id, model_body(ctx, args, path), account)
    if files is not None:
        upload(
            files, lambda sizes: client.model_upload_endpoint(ctx.conn, model_id, sizes, account)
        )
        client.validate_model_upload(ctx.conn, model_id, account)
        created = client.get_model(ctx.conn, model_id, account)
    if args.wait:
        created = ctx.wait(
            args,
            lambda: client.get_model(ctx.conn, model_id, account),
            Target(f"model {model_id}", *SETTLED),
        )
    ctx.show(created)
    return 0


def register(verbs: Verbs) -> None:
    create = verbs.noun("create", NOUN, aliases=ALIASES, help="create a model, uploading files")
    create.add_argument("model_id", metavar="MODEL_ID")
    create.add_argument(
        "path", metavar="PATH", nargs="?", help="file or directory of files to upload"
    )
    create.add_argument("--base-model", help="makes a LoRA addon of this base model")
    create.add_argument("--lora-rank", type=int, help="LoRA rank (else adapter_config.json's r)")
    create.add_argument("--source", help="Hearth: weights already at builtin://, hf://, pvc://")
    _field_options(create)
    wait_options(create, timeout="2h")
    api_command(create, _create)

    get = verbs.noun("get", NOUN, aliases=ALIASES, help="show a model")
    get.add_argument("name", metavar="MODEL")
    api_command(get, CRUD.run_get)

    list_ = verbs.noun("list", NOUN, aliases=ALIASES, help="list models")
    list_options(list_)
    api_command(list_, CRUD.run_list)

    update = verbs.noun("update", NOUN, aliases=ALIASES, help="change a model's fields")
    update.add_argument("name", metavar="MODEL")
    _field_options(update)
    api_command(update, CRUD.run_update)

    delete = verbs.noun("delete", NOUN, aliases=ALIASES, help="delete a model")
    delete.add_argument("name", metavar="MODEL")
    api_command(delete, CRUD.run_delete)
