"""``hearthctl create|get|list|update|delete user`` and ``get account``."""

from __future__ import annotations

import argparse

from .. import client
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

COLLECTION = "users"
NOUN = "user"
ALIASES = ("users",)
ROLES = ("admin", "user", "contributor", "inference-user")
SETTLED = frozenset({"READY"}), frozenset({"FAILED"})

COLUMNS: list[Column] = [
    ("NAME", short_id),
    ("ROLE", field("role")),
    ("EMAIL", field("email")),
    ("SERVICE ACCOUNT", field("serviceAccount")),
    ("STATE", field("state")),
    ("CREATED", field("createTime")),
]

_FIELDS = {"role": "role", "email": "email", "display_name": "displayName"}

CRUD = Crud(
    "user",
    COLLECTION,
    COLUMNS,
    get=client.get_user,
    list_all=client.list_users,
    update=client.update_user,
    delete=client.delete_user,
    fields=_FIELDS,
    update_hint="give --role, --email or --display-name",
)


def _create(ctx: Context, args: argparse.Namespace) -> int:
    body, _ = fields_body(args, _FIELDS)
    body.setdefault("role", "user")
    if args.service_account:
        body["serviceAccount"] = True
    created = client.create_user(ctx.conn, body, args.new_user_id)
    if args.wait:
        account, user_id = ctx.ref(str(created.get("name", "")), COLLECTION)
        created = ctx.wait(
            args,
            lambda: client.get_user(ctx.conn, user_id, account),
            Target(f"user {user_id}", *SETTLED),
        )
    ctx.show(created)
    return 0


def _get_account(ctx: Context, args: argparse.Namespace) -> int:
    ctx.show(client.get_account(ctx.conn, args.account or None))
    return 0


def register(verbs: Verbs) -> None:
    create = verbs.noun("create", NOUN, aliases=ALIASES, help="add a user to the account")
    create.add_argument("new_user_id", metavar="USER_ID", nargs="?", help="default: from the email")
    create.add_argument("--role", choices=ROLES, help="default user")
    create.add_argument("--email")
    create.add_argument("--display-name")
    create.add_argument("--service-account", action="store_true", help="API keys only")
    wait_options(create, timeout="5m")
    api_command(create, _create)

    get = verbs.noun("get", NOUN, aliases=ALIASES, help="show a user")
    get.add_argument("name", metavar="USER")
    api_command(get, CRUD.run_get)

    list_ = verbs.noun("list", NOUN, aliases=ALIASES, help="list users")
    list_options(list_)
    api_command(list_, CRUD.run_list)

    update = verbs.noun("update", NOUN, aliases=ALIASES, help="change a user's role or details")
    update.add_argument("name", metavar="USER")
    update.add_argument("--role", choices=ROLES)
    update.add_argument("--email")
    update.add_argument("--display-name")
    api_command(update, CRUD.run_update)

    delete = verbs.noun("delete", NOUN, aliases=ALIASES, help="remove a user")
    delete.add_argument("name", metavar="USER")
    api_command(delete, CRUD.run_delete)

    account = verbs.noun("get", "account", aliases=("accounts",), help="show the account")
    account.add_argument("account", metavar="ACCOUNT", nargs="?", help="default: the profile's")
    api_command(account, _get_account)
