"""``hearthctl login`` (store a profile) and ``hearthctl whoami`` (show what is in use)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from .. import client
from ..client import Connection
from . import output
from .common import fail, global_options, run_guarded, settings_from
from .profiles import SETTINGS, config_path, save_profile


def _read_key() -> str:
    """The API key from a prompt (terminal) or the first line of standard input."""
    if sys.stdin.isatty():
        return getpass.getpass("API key: ").strip()
    return sys.stdin.readline().strip()


def _login(args: argparse.Namespace) -> int:
    def body() -> int:
        settings = settings_from(args)
        base_url = settings.require("base_url").rstrip("/")
        account_id = settings.require("account_id")
        api_key = settings.api_key or _read_key()
        if not api_key:
            return fail(2, "no API key given (--api-key, HEARTH_API_KEY or standard input)")
        if args.verify:
            with Connection(base_url, account_id, api_key) as conn:
                client.get_account(conn)
        path = config_path(os.environ)
        values = {"base_url": base_url, "account_id": account_id, "api_key": api_key}
        if settings.user_id:
            values["user_id"] = settings.user_id
        save_profile(path, settings.profile, values)
        sys.stdout.write(
            f"profile {settings.profile!r} saved in {path}: account {account_id} at {base_url}\n"
        )
        return 0

    return run_guarded(body)


def _mask(key: str) -> str:
    return key[:8] + "..." if len(key) > 12 else "***"


def _whoami(args: argparse.Namespace) -> int:
    def body() -> int:
        settings = settings_from(args)
        shown = {"profile": settings.profile, "config": str(config_path(os.environ))}
        for setting in SETTINGS:
            value = getattr(settings, setting)
            if value:
                shown[setting] = _mask(value) if setting == "api_key" else value
                shown[f"{setting}From"] = settings.sources[setting]
        fmt = getattr(args, "output", "table")
        sys.stdout.write(output.render_one(shown, fmt))
        return 0

    return run_guarded(body)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parents = [global_options(suppress=True)]
    login = commands.add_parser(
        "login",
        parents=parents,
        help="store the gateway URL, account and API key in a profile",
        description="Checks the key against the gateway (GET /v1/accounts/<account>), then "
        "saves the profile. The key is read from --api-key, HEARTH_API_KEY / "
        "FIREWORKS_API_KEY, or a prompt (standard input when not a terminal).",
    )
    login.add_argument("--user-id", help="your user ID (the owner of api-key commands)")
    login.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check the key with the gateway first (default on)",
    )
    login.set_defaults(handler=_login)

    whoami = commands.add_parser(
        "whoami", parents=parents, help="show the settings in use and where each comes from"
    )
    whoami.add_argument("--user-id", help=argparse.SUPPRESS)
    whoami.set_defaults(handler=_whoami)
