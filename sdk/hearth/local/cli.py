"""``hearthctl local up | down | status``: Hearth on one machine, the way kind gives a cluster.

* ``up`` starts the emulated Kubernetes API (with Hearth's CRDs), the process kubelet,
  ``hearth-operator`` and ``hearth-gateway``, makes the first account with an admin user and
  an API key, and prints the gateway URL, the kubeconfig and the key (also written to
  ``$HEARTH_HOME/local.json``). It runs in the foreground until Ctrl-C, or in the background
  with ``--detach``.
* ``down`` stops everything ``up`` started; the objects are kept for the next ``up``.
* ``status`` says what runs (exit status 1 when nothing does).

Also runnable as ``python -m hearth.local.cli`` (how ``up --detach`` starts its background
process). docs/local.md describes what runs and what is emulated.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hearth.local.state import (
    EMULATION_NOTICE,
    Condition,
    LocalError,
    LocalPaths,
    LocalState,
    Phase,
    assess,
    not_running_message,
    pid_alive,
    read_state,
    run_processes,
    stale_message,
    stop_processes,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``local`` command's subcommands, on ``hearthctl local`` or on its own parser."""
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument(
        "--home",
        help="where the state, objects and logs live (default $HEARTH_HOME, else ~/.hearth)",
    )
    commands = parser.add_subparsers(dest="local_command", required=True)
    up = commands.add_parser(
        "up",
        parents=[home],
        help="start a local Hearth (emulated Kubernetes API, pods as local processes)",
    )
    up.add_argument("--detach", "-d", action="store_true", help="run in the background")
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    up.add_argument("--api-port", type=int, default=16443, help="emulated API port (16443)")
    up.add_argument("--gateway-port", type=int, default=18080, help="gateway port (18080)")
    up.add_argument("--account", default="local", help="the first account (local)")
    up.add_argument("--user", default="admin", help="its admin user (admin)")
    up.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the account, its key and the gateway (180)",
    )
    up.set_defaults(local_handler=_up)
    down = commands.add_parser(
        "down", parents=[home], help="stop the local Hearth (objects are kept)"
    )
    down.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for it to stop (120)"
    )
    down.set_defaults(local_handler=_down)
    status = commands.add_parser("status", parents=[home], help="say what runs")
    status.set_defaults(local_handler=_status)


def register(commands: Any) -> None:
    """Add ``local`` to hearthctl's subcommands (an ``argparse`` subparsers object)."""
    parser = commands.add_parser(
        "local",
        help="Hearth on this machine: emulated Kubernetes API, pods as local processes",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    paths = (
        LocalPaths(Path(args.home).expanduser().resolve()) if args.home else LocalPaths.from_env()
    )
    try:
        return int(args.local_handler(args, paths))
    except LocalError as error:
        print(f"hearthctl local {args.local_command}: {error}", file=sys.stderr)
        return 1


def _options(args: argparse.Namespace) -> Any:
    from hearth.local.stack import OPERATOR_NAMESPACE, UpOptions
    from hearth.names import validate_account_id, validate_id

    try:
        validate_account_id(args.account, operator_namespace=OPERATOR_NAMESPACE)
        validate_id(args.user, what="user ID")
    except ValueError as error:
        raise LocalError(f"--account/--user: {error}") from error
    return UpOptions(
        host=args.host,
        api_port=args.api_port,
        gateway_port=args.gateway_port,
        account=args.account,
        user=args.user,
        api_key_id=f"{args.user}-key",
        timeout=args.timeout,
    )


def _up(args: argparse.Namespace, paths: LocalPaths) -> int:
    from hearth.local.stack import LocalHearth, check_ports, clear_stale, run_lock

    options = _options(args)
    if not args.detach:
        import logging

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # a line per request
        return LocalHearth(paths, options).run()
    # Say what is wrong here, before anything starts in the background.
    with run_lock(paths):
        clear_stale(paths, sys.stdout)
        check_ports(options)
    return _detach(args, paths)


def _detach(args: argparse.Namespace, paths: LocalPaths) -> int:
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.log("hearth-local")
    argv = [
        sys.executable,
        "-m",
        "hearth.local.cli",
        "up",
        "--home",
        str(paths.home),
        "--host",
        args.host,
        "--api-port",
        str(args.api_port),
        "--gateway-port",
        str(args.gateway_port),
        "--account",
        args.account,
        "--user",
        args.user,
        "--timeout",
        str(args.timeout),
    ]
    print(EMULATION_NOTICE.format(home=paths.home))
    print(f"starting in the background (log {log_path}) ...", flush=True)
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    # Started once its state file says RUNNING; failed when it exits first.
    deadline = time.monotonic() + args.timeout + 120
    while True:
        code = child.poll()
        try:
            state = read_state(paths.state_file)
        except LocalError:
            state = None
        if state is not None and state.pid == child.pid and state.phase is Phase.RUNNING:
            from hearth.local.stack import summary

            print(summary(state))
            print("stop it with `hearthctl local down`; see it with `hearthctl local status`")
            return 0
        if code is not None:
            raise LocalError(
                f"the local Hearth exited with status {code} while starting; "
                f"the end of {log_path}:\n{_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            child.send_signal(signal.SIGTERM)
            raise LocalError(
                f"the local Hearth did not start in time (stopping it); see {log_path}:\n"
                + _tail(log_path)
            )
        time.sleep(0.2)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _down(args: argparse.Namespace, paths: LocalPaths) -> int:
    state = read_state(paths.state_file)
    condition = assess(state)
    if condition is Condition.NOT_RUNNING:
        print(not_running_message(paths))
        return 0
    assert state is not None
    if condition is Condition.STALE:
        leftovers = stop_processes(run_processes(state.run_id))
        paths.state_file.unlink(missing_ok=True)
        print(stale_message(state, paths, leftovers))
        return 0
    print(f"stopping the local Hearth (pid {state.pid}) ...", flush=True)
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while pid_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(state.pid):
        print(f"it did not stop within {args.timeout:.0f} s: killing it", file=sys.stderr)
        os.kill(state.pid, signal.SIGKILL)
    leftovers = stop_processes(run_processes(state.run_id), grace=5.0)
    if leftovers:
        print(f"stopped {len(leftovers)} process(es) it left behind")
    paths.state_file.unlink(missing_ok=True)
    print(f"stopped; the objects are kept in {paths.store} for the next `hearthctl local up`")
    return 0


def _status(args: argparse.Namespace, paths: LocalPaths) -> int:
    state = read_state(paths.state_file)
    condition = assess(state)
    if condition is Condition.NOT_RUNNING:
        print(not_running_message(paths))
        if paths.store.exists():
            print(f"saved objects: {paths.store} (`hearthctl local up` starts them again)")
        return 1
    assert state is not None
    if condition is Condition.STALE:
        print(
            f"not running: the state file {paths.state_file} is stale (pid {state.pid}, started "
            f"{state.started_at}, is gone: it crashed or was killed). `hearthctl local up` "
            "or `hearthctl local down` cleans it up."
        )
        return 1
    print(describe(state))
    return 0


def describe(state: LocalState) -> str:
    """``status`` output: the notice, each component and whether it answers, the pods."""
    lines = [
        f"local Hearth: {state.phase.value} (pid {state.pid}, since {state.started_at})",
        EMULATION_NOTICE.format(home=state.home),
        f"  emulated Kubernetes API  {state.api_url}  {_probe(state.api_url + '/version')}",
        f"  process kubelet          in pid {state.pid} (pods run as local processes)",
    ]
    for name, pid in sorted(state.processes.items()):
        lines.append(f"  {name:<24} pid {pid}  {'running' if pid_alive(pid) else 'NOT RUNNING'}")
    lines += [
        f"  gateway                  {state.gateway_url}  {_probe(state.gateway_url + '/health')}",
        f"  account {state.account}, user {state.user}, API key {state.api_key or '(not yet)'}",
        f"  kubeconfig               {state.kubeconfig}   (export KUBECONFIG={state.kubeconfig})",
    ]
    pods = _pods(state.api_url)
    if pods is None:
        lines.append("  pods: the API does not answer")
    else:
        lines.append(f"  pods ({len(pods)}):" if pods else "  pods: none")
        lines += [f"    {line}" for line in pods]
    return "\n".join(lines)


def _probe(url: str) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return "answers" if int(answer.status) == 200 else f"answers {answer.status}"
    except urllib.error.HTTPError as error:
        return f"answers {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"DOES NOT ANSWER ({error})"


def _pods(api_url: str) -> list[str] | None:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url}/api/v1/pods", timeout=3) as answer:
            items = json.loads(answer.read())["items"]
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None
    lines = []
    for pod in items:
        meta, status = pod["metadata"], pod.get("status") or {}
        ready = all(c.get("ready") for c in status.get("containerStatuses") or [{}])
        lines.append(
            f"{meta['namespace']}/{meta['name']}: {status.get('phase', '?')}"
            f"{', ready' if ready and status.get('phase') == 'Running' else ''}"
            f"{', ip ' + status['podIP'] if status.get('podIP') else ''}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearthctl local", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
