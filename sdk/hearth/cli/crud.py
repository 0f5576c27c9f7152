"""``get``, ``list``, ``update`` and ``delete`` of one resource kind, from its client calls.

Each resource module describes itself once (``Crud``) and hands these handlers to its
subcommands; what differs between kinds (options, creation, extra verbs) stays in the
module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..client import Connection, Json, ListQuery
from .common import Context, fields_body, list_query
from .output import Column

Get = Callable[[Connection, str, str | None], Json]
List = Callable[[Connection, ListQuery], Iterable[Json]]
Update = Callable[[Connection, str, Json, list[str], str | None], Json]


@dataclass(frozen=True)
class Crud:
    noun: str  # as confirmations name it: "deleted dataset d1"
    collection: str  # the REST collection, for resolving full names
    columns: Sequence[Column]
    get: Get
    list_all: List
    update: Update | None = None
    delete: Get | None = None
    fields: Mapping[str, str] = field(default_factory=dict)  # update option -> JSON field
    update_hint: str = "give at least one field option"

    def run_get(self, ctx: Context, args: argparse.Namespace) -> int:
        account, name = ctx.ref(args.name, self.collection)
        ctx.show(self.get(ctx.conn, name, account))
        return 0

    def run_list(self, ctx: Context, args: argparse.Namespace) -> int:
        ctx.show_list(self.list_all(ctx.conn, list_query(args)), self.columns)
        return 0

    def run_update(self, ctx: Context, args: argparse.Namespace) -> int:
        assert self.update is not None
        account, name = ctx.ref(args.name, self.collection)
        body, mask = fields_body(args, self.fields)
        if not mask:
            raise ValueError(f"nothing to update: {self.update_hint}")
        ctx.show(self.update(ctx.conn, name, body, mask, account))
        return 0

    def run_delete(self, ctx: Context, args: argparse.Namespace) -> int:
        assert self.delete is not None
        account, name = ctx.ref(args.name, self.collection)
        ctx.done(f"deleted {self.noun} {name}", self.delete(ctx.conn, name, account))
        return 0
