"""``hearthctl download model|dataset NAME DIRECTORY``: every file of a model (an upload,
a fine-tuned LoRA) or dataset, through the signed URLs of ``:getDownloadEndpoint``."""

from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath

from .. import client
from .common import Context, Verbs, api_command

#: noun -> (collection, its aliases)
NOUNS = {"model": ("models", ("models",)), "dataset": ("datasets", ("datasets",))}


def target(directory: Path, name: str) -> Path:
    """Where a file the server names goes: inside ``directory``, whatever the name says."""
    relative = PurePosixPath(name)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise ValueError(f"the server named a file outside the directory: {name!r}")
    return directory.joinpath(*relative.parts)


def _download(ctx: Context, args: argparse.Namespace) -> int:
    collection = NOUNS[args.noun_name][0]
    account, item_id = ctx.ref(args.name, collection)
    answer = client.download_endpoint(ctx.conn, collection, item_id, account)
    urls: dict[str, str] = answer.get("filenameToSignedUrls") or {}
    directory = Path(args.directory)
    total = 0
    for name, url in sorted(urls.items()):
        path = target(directory, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        total += client.download_file(str(url), path)
    ctx.done(
        f"downloaded {len(urls)} file(s), {total} bytes, of {args.noun_name} {item_id} to "
        f"{directory}",
        {"files": sorted(urls), "bytes": total},
    )
    return 0


def register(verbs: Verbs) -> None:
    for noun, (_, aliases) in NOUNS.items():
        parser = verbs.noun("download", noun, aliases=aliases, help=f"download a {noun}'s files")
        parser.add_argument("name", metavar=noun.upper())
        parser.add_argument("directory", metavar="DIRECTORY", help="where the files go")
        parser.set_defaults(noun_name=noun)
        api_command(parser, _download)
