"""Where ``hearthctl local`` keeps its files, and the state file that says what runs.

Everything lives under ``$HEARTH_HOME`` (default ``~/.hearth``):

* ``local.json``: the state file of the running local Hearth (pid, URLs, kubeconfig, the
  first account's API key), written by the process that runs it and removed when it stops;
* ``local/store.json``: every object of the emulated API server, kept across ``down``/``up``;
* ``local/kubeconfig``, ``local/ledger.sqlite3`` (the gateway's usage ledger),
  ``local/pvc/`` (the accounts' artifact volumes), ``local/datasets/`` (ConfigMap datasets
  projected for training pods), ``local/logs/`` (one log per component, ``pods/`` for
  containers).

The functions here only read and write files and look at process ids; the wording of
every problem is here too, so that the command line and the tests agree on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOME_ENV = "HEARTH_HOME"
#: Set in the environment of everything a local run starts (operator, gateway, pods), so
#: that the processes a crashed run left behind can be found and stopped.
RUN_ENV = "HEARTH_LOCAL_RUN"
EMULATION_NOTICE = (
    "The Kubernetes API is EMULATED (hearth.local, one process, objects saved under "
    "{home}) and pods are LOCAL PROCESSES on this machine: this is not a cluster."
)


class LocalError(Exception):
    """A problem ``hearthctl local`` reports as one plain message (exit status 1)."""


@dataclass(frozen=True)
class LocalPaths:
    home: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocalPaths:
        env = os.environ if environ is None else environ
        raw = env.get(HOME_ENV) or str(Path.home() / ".hearth")
        return cls(Path(raw).expanduser().resolve())

    @property
    def state_file(self) -> Path:
        return self.home / "local.json"

    @property
    def data(self) -> Path:
        return self.home / "local"

    @property
    def store(self) -> Path:
        return self.data / "store.json"

    @property
    def kubeconfig(self) -> Path:
        return self.data / "kubeconfig"

    @property
    def ledger(self) -> Path:
        return self.data / "ledger.sqlite3"

    @property
    def pvc(self) -> Path:
        return self.data / "pvc"

    @property
    def datasets(self) -> Path:
        return self.data / "datasets"

    @property
    def operator_config(self) -> Path:
        return self.data / "operator.yaml"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def pod_logs(self) -> Path:
        return self.logs / "pods"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


class Phase(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


@dataclass(frozen=True)
class LocalState:
    """What ``local.json`` holds. The API key is there in plain text (the file is 0600),
    as a kubeconfig holds its credentials."""

    pid: int
    run_id: str
    phase: Phase
    started_at: str
    home: str
    api_url: str
    kubeconfig: str
    gateway_url: str
    account: str
    user: str = ""
    api_key_id: str = ""
    api_key: str = ""
    processes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LocalState:
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name not in data:
                if (
                    spec.default is dataclasses.MISSING
                    and spec.default_factory is dataclasses.MISSING
                ):
                    raise ValueError(f"{name}: missing")
                continue
            values[name] = data[name]
        for name in ("pid",):
            if not isinstance(values[name], int) or values[name] <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {values[name]!r}")
        for name in (
            "run_id",
            "started_at",
            "home",
            "api_url",
            "kubeconfig",
            "gateway_url",
            "account",
            "user",
            "api_key_id",
            "api_key",
        ):
            if name in values and not isinstance(values[name], str):
                raise ValueError(f"{name}: expected a string, got {values[name]!r}")
        try:
            values["phase"] = Phase(values["phase"])
        except ValueError:
            raise ValueError(
                f"phase: expected one of {[p.value for p in Phase]}, got {values['phase']!r}"
            ) from None
        processes = values.get("processes", {})
        if not isinstance(processes, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in processes.items()
        ):
            raise ValueError(f"processes: expected a mapping of names to pids, got {processes!r}")
        return cls(**values)


def read_state(path: Path) -> LocalState | None:
    """The state file, or None when there is none; :class:`LocalError` when unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalError(f"{path}: cannot read the state file: {exc}") from exc
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return LocalState.from_mapping(data)
    except ValueError as exc:
        raise LocalError(
            f"{path}: the state file is damaged ({exc}); if no local Hearth runs, remove it"
        ) from exc


def write_state(path: Path, state: LocalState) -> None:
    """Atomically, readable by this user only (it holds an API key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(state.to_json())
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def remove_state(path: Path, pid: int) -> None:
    """Remove the state file if it is still the one process ``pid`` wrote."""
    try:
        current = read_state(path)
    except LocalError:
        return
    if current is not None and current.pid == pid:
        path.unlink(missing_ok=True)


# ----- processes ---------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and has not exited (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def run_processes(run_id: str, proc: Path = Path("/proc")) -> list[int]:
    """Processes started by the local run ``run_id`` (its operator, gateway and pods), found
    by the marker in their environment. Linux only (an empty list elsewhere)."""
    marker = f"{RUN_ENV}={run_id}".encode()
    found = []
    for entry in _proc_entries(proc):
        if entry == os.getpid():
            continue
        try:
            environ = (proc / str(entry) / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(entry)
    return sorted(found)


def _proc_entries(proc: Path) -> Iterator[int]:
    try:
        names = os.listdir(proc)
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def stop_processes(
    pids: list[int],
    *,
    grace: float = 10.0,
    alive: Callable[[int], bool] = pid_alive,
) -> list[int]:
    """SIGTERM, then SIGKILL whatever still runs after ``grace`` seconds; returns the pids
    that were running."""
    running = [pid for pid in pids if alive(pid)]
    for pid in running:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in running:
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    return running


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


# ----- what the state file says ------------------------------------------------------------------


class Condition(enum.Enum):
    NOT_RUNNING = "not running"
    RUNNING = "running"
    STALE = "stale"


def assess(state: LocalState | None, alive: Callable[[int], bool] = pid_alive) -> Condition:
    if state is None:
        return Condition.NOT_RUNNING
    return Condition.RUNNING if alive(state.pid) else Condition.STALE


def already_running_message(state: LocalState, paths: LocalPaths) -> str:
    return (
        f"a local Hearth is already running (pid {state.pid}, {state.phase.value} since "
        f"{state.started_at}; gateway {state.gateway_url}, state file {paths.state_file}). "
        "See it with `hearthctl local status`, stop it with `hearthctl local down`."
    )


def stale_message(state: LocalState, paths: LocalPaths, leftovers: list[int]) -> str:
    left = (
        f"; stopped {len(leftovers)} process(es) it had left running ({_pids(leftovers)})"
        if leftovers
        else ""
    )
    return (
        f"found a stale state file {paths.state_file}: the local Hearth started at "
        f"{state.started_at} (pid {state.pid}) is not running any more (it crashed or was "
        f"killed){left}. Removed the file; the saved objects in {paths.store} are kept."
    )


def port_in_use_message(what: str, host: str, port: int, option: str) -> str:
    return (
        f"port {port} on {host} is in use, so the {what} cannot listen there: stop what "
        f"holds it (e.g. `ss -ltnp 'sport = :{port}'` shows it) or choose another port with "
        f"{option} PORT"
    )


def not_running_message(paths: LocalPaths) -> str:
    return f"no local Hearth is running (no state file {paths.state_file})"


def _pids(pids: list[int]) -> str:
    return ", ".join(f"pid {pid}" for pid in pids)
