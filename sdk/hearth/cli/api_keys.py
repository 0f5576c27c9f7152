"""``hearthctl create|list|delete api-key``.

Keys belong to a user: ``--user``, else the ``user_id`` of the profile (``hearthctl login
--user-id``) or ``HEARTH_USER_ID``. ``create`` prints the key once; the server keeps only
its hash.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from .. import client
from ..client import Json
from .common import Context, Verbs, api_command, list_options, list_query
from .output import Column, field

NOUN = "api-key"
ALIASES = ("api-keys", "apikey", "apikeys")

COLUMNS: list[Column] = [
    ("KEY ID", field("keyId")),
    ("NAME", field("displayName")),
    ("PREFIX", field("prefix")),
    ("CREATED", field("createTime")),
    ("EXPIRES", field("expireTime")),
]


def expire_time(text: str) -> str:
    """RFC 3339 (UTC) for ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM:SS`` (firectl's forms, UTC)
    or an RFC 3339 timestamp."""
    for layout in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S"):
        try:
            moment = datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expire time {text!r}: use YYYY-MM-DD, 'YYYY-MM-DD HH:MM:SS' or RFC 3339"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(ctx: Context, args: argparse.Namespace) -> tuple[str, str]:
    value = args.user or ctx.settings.user_id
    if not value:
        raise ValueError(
            "whose keys? give --user, set HEARTH_USER_ID, or `hearthctl login --user-id`"
        )
    return ctx.ref(value, "users")


def _create(ctx: Context, args: argparse.Namespace) -> int:
    account, user_id = _user(ctx, args)
    body: Json = {}
    if args.key_name:
        body["displayName"] = args.key_name
    if args.expire_time:
        body["expireTime"] = args.expire_time
    created = client.create_api_key(ctx.conn, user_id, body, account)
    if ctx.output != "table":
        ctx.show(created)
        return 0
    ctx.print(
        f"key id: {created.get('keyId', '')}\n"
        f"key:    {created.get('key', '')}\n"
        "The key is shown only this once: store it now.\n"
    )
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    account, user_id = _user(ctx, args)
    ctx.show_list(client.list_api_keys(ctx.conn, user_id, list_query(args), account), COLUMNS)
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    account, user_id = _user(ctx, args)
    answer = client.delete_api_key(ctx.conn, user_id, args.key_id, account)
    ctx.done(f"deleted API key {args.key_id} of user {user_id}", answer)
    return 0


def register(verbs: Verbs) -> None:
    create = verbs.noun("create", NOUN, aliases=ALIASES, help="issue an API key (shown once)")
    create.add_argument("--user", help="owner (ID or name); default: the profile's user")
    create.add_argument("--key-name", help="display name of the key")
    create.add_argument("--expire-time", type=expire_time, help="YYYY-MM-DD[ HH:MM:SS] UTC")
    api_command(create, _create)

    list_ = verbs.noun("list", NOUN, aliases=ALIASES, help="list a user's API keys")
    list_.add_argument("--user", help="owner; default: the profile's user")
    list_options(list_)
    api_command(list_, _list)

    delete = verbs.noun("delete", NOUN, aliases=ALIASES, help="revoke an API key")
    delete.add_argument("key_id", metavar="KEY_ID")
    delete.add_argument("--user", help="owner; default: the profile's user")
    api_command(delete, _delete)
