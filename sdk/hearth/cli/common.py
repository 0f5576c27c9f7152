"""What every API command shares: options, settings, the connection, names, output,
``--wait``, and the mapping of failures to exit codes."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ..client import ApiError, Connection, ConnectionFailed, Json, ListQuery
from . import output
from .output import Column
from .profiles import ConfigError, Settings, config_path, read_profiles, resolve
from .waiting import (
    Describe,
    Fetch,
    ProgressLine,
    Target,
    WaitFailed,
    WaitTimedOut,
    describe_state,
    parse_duration,
    wait_for,
    wait_gone,
)

# Exit statuses (docs/hearthctl.md lists them).
EXIT_OK: Final = 0
EXIT_API_ERROR: Final = 1  # the server refused: its message is printed
EXIT_USAGE: Final = 2  # bad arguments or settings (argparse uses 2 too)
EXIT_UNREACHABLE: Final = 3  # the gateway could not be reached
EXIT_WAIT_FAILED: Final = 4  # --wait: the object ended FAILED / CANCELLED / ...
EXIT_WAIT_TIMEOUT: Final = 5  # --wait: still not settled at --wait-timeout
EXIT_INTERRUPTED: Final = 130

#: The verbs of the verb-noun grammar (``hearthctl create deployment ...``).
VERBS: Final = (
    "create",
    "get",
    "list",
    "update",
    "delete",
    "scale",
    "cancel",
    "resume",
    "download",
)


def global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """Connection and output options, accepted before the verb or after the noun.

    On the leaf parsers their defaults are suppressed so a value given before the verb
    is not overwritten by the leaf's default.
    """
    default = argparse.SUPPRESS if suppress else None
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection and output")
    group.add_argument("-p", "--profile", default=default, help="profile in the config file")
    group.add_argument("-a", "--account-id", default=default, help="account (overrides profile)")
    group.add_argument("--api-key", default=default, help="API key (overrides profile)")
    group.add_argument("--base-url", default=default, help="gateway URL (overrides profile)")
    group.add_argument(
        "-o",
        "--output",
        choices=output.FORMATS,
        default=argparse.SUPPRESS if suppress else "table",
        help="table (default), json or yaml",
    )
    return parser


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def wait_options(parser: argparse.ArgumentParser, *, timeout: str, wait: bool = False) -> None:
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=wait,
        help=f"wait until the state settles (default {'on' if wait else 'off'})",
    )
    parser.add_argument(
        "--wait-timeout",
        type=_duration,
        default=timeout,
        help=f"give up waiting after this (default {timeout})",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, help="seconds between polls (default 2)"
    )


def list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", help='AIP-160 filter, e.g. state="READY"')
    parser.add_argument("--order-by", help='e.g. "create_time desc"')
    parser.add_argument("--page-size", type=int, help="items per request (server max 200)")
    parser.add_argument("--page-token", help="start from this page token")
    parser.add_argument("--limit", type=int, help="print at most this many items")


def list_query(args: argparse.Namespace, **extra: str) -> ListQuery:
    return ListQuery(
        filter=args.filter,
        order_by=args.order_by,
        page_size=args.page_size,
        page_token=args.page_token,
        limit=args.limit,
        extra=extra,
    )


class Verbs:
    """The verb parsers; each resource module adds its noun under the verbs it has."""

    def __init__(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._commands = commands
        self._leaf_parents = [global_options(suppress=True)]
        self._nouns: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
        #: Every noun spelling -> its canonical noun, for the noun-verb grammar.
        self.noun_spellings: dict[str, str] = {}
        for verb in VERBS:
            parser = commands.add_parser(verb, help=f"{verb} a resource")
            self._nouns[verb] = parser.add_subparsers(dest="noun", required=True, metavar="NOUN")

    def noun(
        self, verb: str, noun: str, *, aliases: Sequence[str] = (), help: str
    ) -> argparse.ArgumentParser:
        self.noun_spellings.update(dict.fromkeys([noun, *aliases], noun))
        return self._nouns[verb].add_parser(
            noun, aliases=list(aliases), help=help, parents=self._leaf_parents
        )

    def command(self, name: str, *, help: str) -> argparse.ArgumentParser:
        """A verb without a noun (``load-lora``)."""
        return self._commands.add_parser(name, help=help, parents=self._leaf_parents)


@dataclass
class Context:
    """One API command's connection, settings and output format."""

    conn: Connection
    settings: Settings
    output: str

    @property
    def account(self) -> str:
        return self.conn.account_id

    def ref(self, value: str, collection: str) -> tuple[str, str]:
        """(account, id) of a resource given as an ID or as its full name."""
        if value.startswith("accounts/"):
            parts = value.split("/")
            if len(parts) != 4 or parts[2] != collection or not parts[1] or not parts[3]:
                raise ValueError(
                    f"{value!r} is not a {collection} name: use an ID or "
                    f"accounts/<account>/{collection}/<id>"
                )
            return parts[1], parts[3]
        if not value or "/" in value:
            raise ValueError(f"{value!r} is not a {collection} ID")
        return self.account, value

    def full_name(self, value: str, collection: str) -> str:
        """``accounts/<a>/<collection>/<id>`` for an ID (this account), ``<a>/<id>`` or a
        full name."""
        if value.startswith("accounts/"):
            self.ref(value, collection)
            return value
        pieces = value.split("/")
        if len(pieces) == 2 and all(pieces):
            return f"accounts/{pieces[0]}/{collection}/{pieces[1]}"
        account, resource_id = self.ref(value, collection)
        return f"accounts/{account}/{collection}/{resource_id}"

    def print(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def show(self, obj: Json) -> None:
        self.print(output.render_one(obj, self.output))

    def show_list(self, items: Iterable[Json], columns: Sequence[Column]) -> None:
        self.print(output.render_list(list(items), self.output, columns))

    def done(self, message: str, answer: Json) -> None:
        """A one-line confirmation (table) or the server's answer (json/yaml)."""
        self.print(message + "\n" if self.output == "table" else output.dump(answer, self.output))

    def wait(
        self,
        args: argparse.Namespace,
        fetch: Fetch,
        target: Target,
        describe: Describe = describe_state,
    ) -> Json:
        return wait_for(
            fetch,
            target,
            timeout_s=args.wait_timeout,
            interval_s=args.poll_interval,
            progress=ProgressLine(sys.stderr),
            describe=describe,
        )

    def wait_gone(self, args: argparse.Namespace, fetch: Fetch, what: str) -> None:
        wait_gone(
            fetch,
            what,
            timeout_s=args.wait_timeout,
            interval_s=args.poll_interval,
            progress=ProgressLine(sys.stderr),
        )


ApiHandler = Callable[[Context, argparse.Namespace], int]


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {
        setting: getattr(args, setting, None)
        for setting in ("base_url", "account_id", "api_key", "user_id")
    }
    profiles = read_profiles(config_path(os.environ))
    return resolve(flags, os.environ, profiles, getattr(args, "profile", None))


def fail(status: int, message: str) -> int:
    sys.stderr.write(f"hearthctl: {message}\n")
    return status


def run_guarded(body: Callable[[], int]) -> int:
    """Run a command; failures become a message on stderr and the documented exit status."""
    try:
        return body()
    except ApiError as error:
        where = f"{error.request}: " if error.request else ""
        return fail(EXIT_API_ERROR, f"{where}{error}")
    except ConnectionFailed as error:
        return fail(EXIT_UNREACHABLE, str(error))
    except WaitFailed as error:
        return fail(EXIT_WAIT_FAILED, str(error))
    except WaitTimedOut as error:
        return fail(EXIT_WAIT_TIMEOUT, str(error))
    except (ConfigError, ValueError, OSError) as error:
        return fail(EXIT_USAGE, str(error))
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")


def _run_api(handler: ApiHandler, args: argparse.Namespace) -> int:
    def body() -> int:
        settings = settings_from(args)
        with Connection(
            settings.require("base_url"),
            settings.require("account_id"),
            settings.require("api_key"),
        ) as conn:
            context = Context(conn=conn, settings=settings, output=getattr(args, "output", "table"))
            return handler(context, args)

    return run_guarded(body)


def api_command(parser: argparse.ArgumentParser, handler: ApiHandler) -> None:
    """Make ``handler`` the parser's command, run against the resolved gateway."""
    parser.set_defaults(handler=functools.partial(_run_api, handler))


def set_if(body: Json, key: str, value: object) -> None:
    """Put ``value`` in ``body`` unless it is ``None`` (an option not given)."""
    if value is not None:
        body[key] = value


def fields_body(args: argparse.Namespace, fields: Mapping[str, str]) -> tuple[Json, list[str]]:
    """The body holding every option given (option dest -> camelCase field path, dotted
    for nested fields) and the paths it sets, which are the update mask."""
    body: Json = {}
    paths: list[str] = []
    for option, path in fields.items():
        value = getattr(args, option, None)
        if value is None:
            continue
        target = body
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
        paths.append(path)
    return body, paths
