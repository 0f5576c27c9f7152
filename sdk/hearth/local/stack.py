"""The local Hearth that ``hearthctl local up`` runs: one supervising process.

In this process: the emulated Kubernetes API server (Hearth's CRDs, their CEL rules, objects
saved to ``$HEARTH_HOME/local/store.json``) and the process kubelet (pods as local
processes, each with its own loopback address from 127.42.0.1). As child processes, exactly
as they run in a cluster: ``hearth-operator`` and ``hearth-gateway``, both with the
kubeconfig of the emulated API. A child that dies is started again, as a Deployment would.

At start it makes sure the first account exists (an Account, an admin User and an ApiKey;
the operator issues the key into the Secret ``status.secretName``), waits until the gateway
answers that key, then writes the state file and runs until SIGTERM or SIGINT. Stopping
stops the gateway, the operator, every pod (the pod objects stay, and are started again by
the next ``up``), saves the objects and removes the state file.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

import yaml

from hearth.local.state import (
    EMULATION_NOTICE,
    RUN_ENV,
    Condition,
    LocalError,
    LocalPaths,
    LocalState,
    Phase,
    already_running_message,
    assess,
    port_in_use_message,
    read_state,
    remove_state,
    run_processes,
    stale_message,
    stop_processes,
    write_state,
)

log = logging.getLogger("hearth.local")

GROUP_VERSION = "hearth.dev/v1alpha1"
OPERATOR_NAMESPACE = "hearth-system"
#: Pods get 127.42.0.1, 127.42.0.2, ...: away from the 127.0.1.x the test suites use.
FIRST_POD_IP = "127.42.0.1"


@dataclass(frozen=True)
class UpOptions:
    host: str = "127.0.0.1"
    api_port: int = 16443
    gateway_port: int = 18080
    account: str = "local"
    user: str = "admin"
    api_key_id: str = "admin-key"
    #: Seconds to wait for the operator to make the account and its key.
    timeout: float = 180.0

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (with SO_REUSEADDR, as aiohttp and
    uvicorn bind, so a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(options: UpOptions) -> None:
    for what, port, flag in (
        ("emulated Kubernetes API", options.api_port, "--api-port"),
        ("gateway", options.gateway_port, "--gateway-port"),
    ):
        if port and not port_free(options.host, port):
            raise LocalError(port_in_use_message(what, options.host, port, flag))


def clear_stale(paths: LocalPaths, out: TextIO) -> None:
    """Refuse when a local Hearth runs; clean up after one that crashed."""
    state = read_state(paths.state_file)
    condition = assess(state)
    if condition is Condition.RUNNING:
        assert state is not None
        raise LocalError(already_running_message(state, paths))
    if condition is Condition.STALE:
        assert state is not None
        leftovers = stop_processes(run_processes(state.run_id))
        paths.state_file.unlink(missing_ok=True)
        print(f"note: {stale_message(state, paths, leftovers)}", file=out, flush=True)


@contextlib.contextmanager
def run_lock(paths: LocalPaths) -> Iterator[None]:
    """One local Hearth per $HEARTH_HOME, even when two ``up`` start at the same moment."""
    paths.home.mkdir(parents=True, exist_ok=True)
    with (paths.home / "local.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            state = read_state(paths.state_file)
            if state is not None:
                raise LocalError(already_running_message(state, paths)) from None
            raise LocalError(
                f"another `hearthctl local up` is starting in {paths.home}; "
                "see `hearthctl local status`"
            ) from None
        yield


def model_cache_dir() -> Path:
    """Where hearth-server keeps converted models: the same rule as
    ``hearth_server.models.resolve.cache_dir`` (not imported: it pulls in the ML stack)."""
    env = os.environ.get("HEARTH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "hearth"


def operator_settings(paths: LocalPaths) -> dict[str, Any]:
    """hearth-operator settings (its HEARTH_OPERATOR_CONFIG file) for pods run as processes."""
    python = sys.executable
    return {
        "namespace": OPERATOR_NAMESPACE,
        "server_command": [python, "-m", "hearth_server.cli"],
        "trainer_command": [python, "-m", "hearth_trainer.cli"],
        # Trainers report progress into their FineTuningJob through the emulated API.
        "trainer_env": {"KUBECONFIG": str(paths.kubeconfig)},
        "pvc_mount_root": str(paths.pvc),
        "model_cache_path": str(model_cache_dir()),
        "dataset_mount_root": str(paths.datasets),
        "resync_seconds": 5.0,
    }


def upload_secret(paths: LocalPaths) -> str:
    """The key signing the gateway's upload URLs, kept across restarts (so a URL handed out
    before ``down`` still works after ``up``)."""
    path = paths.data / "upload-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip()


def bootstrap_objects(options: UpOptions) -> list[dict[str, Any]]:
    """The first account, its admin user and that user's API key."""
    ns = options.account
    return [
        {
            "apiVersion": GROUP_VERSION,
            "kind": "Account",
            "metadata": {"name": ns},
            "spec": {"displayName": f"{ns} (hearthctl local)"},
        },
        {
            "apiVersion": GROUP_VERSION,
            "kind": "User",
            "metadata": {"name": options.user, "namespace": ns},
            "spec": {"role": "admin", "email": f"{options.user}@{ns}.localhost"},
        },
        {
            "apiVersion": GROUP_VERSION,
            "kind": "ApiKey",
            "metadata": {"name": options.api_key_id, "namespace": ns},
            "spec": {"user": options.user, "displayName": "created by hearthctl local up"},
        },
    ]


def key_of(secret: dict[str, Any] | None) -> str | None:
    encoded = ((secret or {}).get("data") or {}).get("key")
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except ValueError:
        return None


class Child:
    """A component run as a process (operator, gateway), restarted when it dies."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(
            f"--- {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} starting {self.name}\n".encode()
        )
        self._log.flush()
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches the supervisor only
        )

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, grace: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class LocalHearth:
    def __init__(self, paths: LocalPaths, options: UpOptions, out: TextIO = sys.stdout) -> None:
        self.paths = paths
        self.options = options
        self.out = out
        self.run_id = uuid.uuid4().hex
        self.started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.stop_requested = threading.Event()
        self.api: Any = None  # KubeEmulatorServer
        self.kubelet: Any = None  # ProcessKubelet
        self.children: list[Child] = []
        self.state: LocalState | None = None

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    # ----- the whole life --------------------------------------------------------------------

    def run(self, on_ready: Callable[[LocalState], None] | None = None) -> int:
        """Start everything, serve until asked to stop, stop everything."""
        with run_lock(self.paths):
            clear_stale(self.paths, self.out)
            check_ports(self.options)
            os.environ[RUN_ENV] = self.run_id  # inherited by the operator, gateway and pods
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stop_requested.set())
            try:
                state = self.start()
                if on_ready is not None:
                    on_ready(state)
                self.supervise()
            finally:
                self.stop()
        return 0

    def start(self) -> LocalState:
        from hearth.crd import build_crds
        from hearth.local.emulator import KubeEmulatorServer
        from hearth.local.emulator.hearth_rules import hearth_validator
        from hearth.local.kubelet import ProcessKubelet

        paths, options = self.paths, self.options
        for directory in (paths.data, paths.pvc, paths.datasets, paths.pod_logs):
            directory.mkdir(parents=True, exist_ok=True)
        self.say(EMULATION_NOTICE.format(home=paths.home))
        self._write_state(Phase.STARTING)
        restored = paths.store.exists()
        self.say(
            f"starting the emulated Kubernetes API on {options.api_url}"
            + (f" (objects from {paths.store})" if restored else "")
        )
        self.api = KubeEmulatorServer(
            host=options.host,
            port=options.api_port,
            workdir=paths.data,
            validators=[hearth_validator()],
            state_file=paths.store,
        )
        try:
            self.api.start()
        except RuntimeError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and not port_free(options.host, options.api_port):
                raise LocalError(
                    port_in_use_message(
                        "emulated Kubernetes API", options.host, options.api_port, "--api-port"
                    )
                ) from exc
            raise LocalError(f"the emulated Kubernetes API did not start: {cause or exc}") from exc
        for skipped in self.api.restore_skipped:
            self.say(f"note: {paths.store}: not restored (its kind is not served): {skipped}")
        for crd in build_crds():
            self.api.apply(crd)
        self.api.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
        )
        self.say(f"kubeconfig: {paths.kubeconfig}")
        self.say(f"starting the process kubelet (pod logs in {paths.pod_logs})")
        self.kubelet = ProcessKubelet(
            self.api,
            log_dir=paths.pod_logs,
            volume_roots=[paths.datasets],
            first_ip=FIRST_POD_IP,
            probe_period_cap=1.0,
        )
        self.kubelet.start()
        paths.operator_config.write_text(yaml.safe_dump(operator_settings(paths)))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        operator = Child(
            "hearth-operator",
            [
                sys.executable,
                "-m",
                "hearth_operator",
                "--kubeconfig",
                str(paths.kubeconfig),
                "--liveness",
                "",
                "--metrics-port",
                "0",
            ],
            {
                **env,
                "HEARTH_OPERATOR_CONFIG": str(paths.operator_config),
                # GPU- and replica-seconds go to the gateway's ledger (one SQLite file).
                "HEARTH_LEDGER_URL": f"sqlite:///{paths.ledger}",
            },
            paths.log("operator"),
        )
        gateway = Child(
            "hearth-gateway",
            [
                sys.executable,
                "-m",
                "hearth_gateway.cli",
                "--kubeconfig",
                str(paths.kubeconfig),
                "--host",
                options.host,
                "--port",
                str(options.gateway_port),
                # Dataset uploads through the REST API land where pods read pvc://artifacts.
                "--upload-dir",
                str(paths.pvc / "artifacts"),
                "--public-url",
                options.gateway_url,
            ],
            {
                **env,
                "HEARTH_GATEWAY_LEDGER_PATH": str(paths.ledger),
                "HEARTH_GATEWAY_UPLOAD_SECRET": upload_secret(paths),
            },
            paths.log("gateway"),
        )
        self.children = [operator, gateway]
        self.say(f"starting hearth-operator (log {operator.log_path})")
        operator.start()
        self.say(f"starting hearth-gateway on {options.gateway_url} (log {gateway.log_path})")
        gateway.start()
        self._write_state(Phase.STARTING)
        key = self.bootstrap()
        self.wait_for_gateway(key)
        state = self._write_state(Phase.RUNNING, key)
        self.say(summary(state))
        return state

    def bootstrap(self) -> str:
        """The first account, user and key (each kept when it exists); the key's plaintext."""
        options = self.options
        account, user, api_key = bootstrap_objects(options)
        self.say(
            f"account {options.account}: admin user {options.user}, API key {options.api_key_id}"
        )
        if self.api.get(GROUP_VERSION, "Account", options.account) is None:
            self._create(account)
        self._wait(
            lambda: self._state_of("Account", options.account, None) == "READY",
            f"Account {options.account} to be READY (the operator makes its namespace)",
            "Account",
            options.account,
            None,
        )
        for obj in (user, api_key):
            if self.api.get(GROUP_VERSION, obj["kind"], obj["metadata"]["name"], options.account):
                continue
            self._create(obj)
        self._wait(
            lambda: self._state_of("ApiKey", options.api_key_id, options.account) == "READY",
            f"ApiKey {options.api_key_id} to be READY (the operator issues the key)",
            "ApiKey",
            options.api_key_id,
            options.account,
        )
        found = self.api.get(GROUP_VERSION, "ApiKey", options.api_key_id, options.account)
        secret_name = ((found or {}).get("status") or {}).get("secretName") or (
            f"{options.api_key_id}.api-key"
        )
        key = key_of(self.api.get("v1", "Secret", secret_name, options.account))
        if not key:
            raise LocalError(
                f"ApiKey {options.account}/{options.api_key_id} is READY but its Secret "
                f"{secret_name} holds no key (delete the ApiKey and run `up` again)"
            )
        return key

    def _create(self, obj: dict[str, Any]) -> None:
        from hearth.local.emulator import ApiError

        try:
            self.api.create(obj)
        except ApiError as error:  # e.g. --account is not a valid name
            raise LocalError(
                f"cannot create {obj['kind']} {obj['metadata']['name']!r}: {error.message}"
            ) from error

    def wait_for_gateway(self, key: str) -> None:
        url = f"{self.options.gateway_url}/v1/models"
        self.say(f"waiting for the gateway to accept the key ({url})")

        def accepts() -> bool:
            request = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    return int(answer.status) == 200
            except (urllib.error.URLError, OSError):
                return False

        self._wait(accepts, "the gateway to answer with the new key", None, "", None)

    def _state_of(self, kind: str, name: str, namespace: str | None) -> str | None:
        obj = self.api.get(GROUP_VERSION, kind, name, namespace)
        state = ((obj or {}).get("status") or {}).get("state")
        return str(state) if state else None

    def _wait(
        self,
        condition: Callable[[], bool],
        what: str,
        kind: str | None,
        name: str,
        namespace: str | None,
    ) -> None:
        deadline = time.monotonic() + self.options.timeout
        while not condition():
            for child in self.children:
                code = child.exited()
                if code is not None:
                    raise LocalError(
                        f"{child.name} exited with status {code} while waiting for {what}; "
                        f"the end of {child.log_path}:\n{child.tail()}"
                    )
            if self.stop_requested.is_set():
                raise LocalError(f"stopped while waiting for {what}")
            if time.monotonic() > deadline:
                seen = ""
                if kind is not None:
                    obj = self.api.get(GROUP_VERSION, kind, name, namespace)
                    seen = f"; its status: {json.dumps((obj or {}).get('status'))}"
                raise LocalError(
                    f"gave up after {self.options.timeout:.0f} s waiting for {what}{seen}; "
                    f"logs in {self.paths.logs}"
                )
            time.sleep(0.1)

    def supervise(self) -> None:
        """Until asked to stop: start again a component process that died (with a growing
        pause, as a kubelet's back-off), and note it in the log."""
        pauses: dict[str, float] = {}
        while not self.stop_requested.wait(0.5):
            for child in self.children:
                code = child.exited()
                if code is None:
                    continue
                pause = min(2 * pauses.get(child.name, 0.5), 30.0)
                pauses[child.name] = pause
                log.warning(
                    "%s exited with status %s; starting it again in %.0f s (log %s)",
                    child.name,
                    code,
                    pause,
                    child.log_path,
                )
                if self.stop_requested.wait(pause):
                    return
                child.stop()
                child.restarts += 1
                child.start()
                self._write_state(Phase.RUNNING, self.state.api_key if self.state else "")

    def stop(self) -> None:
        if self.state is not None:
            self._write_state(Phase.STOPPING, self.state.api_key)
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.stop()
        if self.kubelet is not None:
            with contextlib.suppress(Exception):
                self.kubelet.stop()  # every pod's processes; the pod objects stay
        if self.api is not None:
            try:
                self.api.stop()  # saves the objects
            except Exception as exc:
                log.error("stopping the emulated API failed: %s", exc)
        leftovers = stop_processes(run_processes(self.run_id), grace=5.0)
        if leftovers:
            log.warning("stopped %d leftover process(es): %s", len(leftovers), leftovers)
        remove_state(self.paths.state_file, os.getpid())
        self.say(f"stopped; objects saved in {self.paths.store}")

    def _write_state(self, phase: Phase, key: str = "") -> LocalState:
        options = self.options
        state = LocalState(
            pid=os.getpid(),
            run_id=self.run_id,
            phase=phase,
            started_at=self.started_at,
            home=str(self.paths.home),
            api_url=options.api_url,
            kubeconfig=str(self.paths.kubeconfig),
            gateway_url=options.gateway_url,
            account=options.account,
            user=options.user,
            api_key_id=options.api_key_id,
            api_key=key,
            processes={child.name: child.pid for child in self.children if child.pid},
        )
        if self.state is not None and not key:
            state = replace(state, api_key=self.state.api_key)
        write_state(self.paths.state_file, state)
        self.state = state
        return state


def summary(state: LocalState) -> str:
    """What ``up`` prints once everything serves."""
    return "\n".join(
        [
            "",
            "Hearth is running locally.",
            "  " + EMULATION_NOTICE.format(home=state.home),
            f"  gateway (OpenAI base URL {state.gateway_url}/v1, "
            f"Anthropic base URL {state.gateway_url})",
            f"  account:     {state.account} (user {state.user}, role admin)",
            f"  API key:     {state.api_key}",
            f"  kubeconfig:  {state.kubeconfig}",
            f"  state file:  {Path(state.home) / 'local.json'}",
            "",
            f"  export KUBECONFIG={state.kubeconfig}",
            f"  export HEARTH_API_KEY={state.api_key}",
            "",
        ]
    )
