"""``hearthctl create|get|list|update|delete dataset``.

``create dataset ID --file data.jsonl`` creates the dataset, uploads the file through
``:getUploadEndpoint`` and its signed URL, calls ``:validateUpload`` and waits until the
server's validation makes it READY (or FAILED, with the reason).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import client
from ..client import Json
from .common import (
    Context,
    Verbs,
    api_command,
    list_options,
    wait_options,
)
from .crud import Crud
from .output import Column, field, short_id
from .uploads import upload
from .waiting import Target

COLLECTION = "datasets"
NOUN = "dataset"
ALIASES = ("datasets",)
SETTLED = frozenset({"READY"}), frozenset({"FAILED"})

COLUMNS: list[Column] = [
    ("NAME", short_id),
    ("STATE", field("state")),
    ("FORMAT", field("format")),
    ("EXAMPLES", field("exampleCount")),
    ("CREATED", field("createTime")),
]

_FIELDS = {"display_name": "displayName"}

CRUD = Crud(
    "dataset",
    COLLECTION,
    COLUMNS,
    get=client.get_dataset,
    list_all=client.list_datasets,
    update=client.update_dataset,
    delete=client.delete_dataset,
    fields=_FIELDS,
    update_hint="give --display-name",
)


def count_examples(path: Path) -> int:
    """Non-blank lines: one example each in JSONL."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _create(ctx: Context, args: argparse.Namespace) -> int:
    if args.path and args.file and args.path != args.file:
        raise ValueError("give the file once: as FILE or as --file")
    source = args.file or args.path
    if not source:
        raise ValueError("give the JSONL file to upload: --file data.jsonl")
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    account, dataset_id = ctx.ref(args.dataset_id, COLLECTION)
    dataset: Json = {"userUploaded": {}, "exampleCount": str(count_examples(path))}
    if args.display_name:
        dataset["displayName"] = args.display_name
    if args.format:
        dataset["format"] = args.format
    created = client.create_dataset(ctx.conn, dataset_id, dataset, account)
    upload(
        {path.name: path},
        lambda sizes: client.dataset_upload_endpoint(ctx.conn, dataset_id, sizes, account),
    )
    client.validate_dataset_upload(ctx.conn, dataset_id, account)
    if args.wait:
        created = ctx.wait(
            args,
            lambda: client.get_dataset(ctx.conn, dataset_id, account),
            Target(f"dataset {dataset_id}", *SETTLED),
        )
    else:
        created = client.get_dataset(ctx.conn, dataset_id, account)
    ctx.show(created)
    return 0


def register(verbs: Verbs) -> None:
    create = verbs.noun("create", NOUN, aliases=ALIASES, help="upload a JSONL dataset")
    create.add_argument("dataset_id", metavar="DATASET_ID")
    create.add_argument("path", metavar="FILE", nargs="?", help="the JSONL file (or --file)")
    create.add_argument("--file", help="the JSONL file")
    create.add_argument("--display-name")
    create.add_argument("--format", choices=("CHAT", "COMPLETION"), help="default: server's")
    wait_options(create, timeout="30m", wait=True)
    api_command(create, _create)

    get = verbs.noun("get", NOUN, aliases=ALIASES, help="show a dataset")
    get.add_argument("name", metavar="DATASET")
    api_command(get, CRUD.run_get)

    list_ = verbs.noun("list", NOUN, aliases=ALIASES, help="list datasets")
    list_options(list_)
    api_command(list_, CRUD.run_list)

    update = verbs.noun("update", NOUN, aliases=ALIASES, help="change a dataset's display name")
    update.add_argument("name", metavar="DATASET")
    update.add_argument("--display-name")
    api_command(update, CRUD.run_update)

    delete = verbs.noun("delete", NOUN, aliases=ALIASES, help="delete a dataset")
    delete.add_argument("name", metavar="DATASET")
    api_command(delete, CRUD.run_delete)
