"""``hearthctl local``: the state file, process bookkeeping and the messages of bad states."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearth.local import cli
from hearth.local.stack import UpOptions, check_ports, clear_stale, operator_settings, run_lock
from hearth.local.state import (
    RUN_ENV,
    Condition,
    LocalError,
    LocalPaths,
    LocalState,
    Phase,
    assess,
    pid_alive,
    read_state,
    remove_state,
    run_processes,
    stop_processes,
    write_state,
)

pytestmark = pytest.mark.timeout(60)


def a_state(pid: int, run_id: str = "run-1", **changes: object) -> LocalState:
    values: dict[str, object] = {
        "pid": pid,
        "run_id": run_id,
        "phase": Phase.RUNNING,
        "started_at": "2026-01-01T00:00:00Z",
        "home": "/h",
        "api_url": "http://127.0.0.1:16443",
        "kubeconfig": "/h/local/kubeconfig",
        "gateway_url": "http://127.0.0.1:18080",
        "account": "local",
        "user": "admin",
        "api_key_id": "admin-key",
        "api_key": "hk_x",
        "processes": {"hearth-gateway": 12},
        **changes,
    }
    return LocalState(**values)  # type: ignore[arg-type]


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def paths(tmp_path: Path) -> LocalPaths:
    return LocalPaths(tmp_path / "home")


@pytest.fixture
def marked_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A process carrying a run's marker in its environment, as the operator and pods do."""
    run_id = f"test-{os.getpid()}-{id(object())}"
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, RUN_ENV: run_id},
    )
    yield run_id, process
    process.kill()
    process.wait()


def test_paths_follow_hearth_home(tmp_path: Path) -> None:
    paths = LocalPaths.from_env({"HEARTH_HOME": str(tmp_path / "h")})
    assert paths.state_file == tmp_path / "h" / "local.json"
    assert paths.store == tmp_path / "h" / "local" / "store.json"
    assert paths.kubeconfig.parent == paths.data
    assert LocalPaths.from_env({}).home == Path.home().resolve() / ".hearth"


def test_state_file_round_trip_is_private(paths: LocalPaths) -> None:
    state = a_state(123)
    write_state(paths.state_file, state)
    assert read_state(paths.state_file) == state
    assert stat.S_IMODE(paths.state_file.stat().st_mode) == 0o600, "it holds an API key"
    assert read_state(paths.home / "nothing.json") is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pid": "12"}, "pid"),
        ({"pid": -1}, "pid"),
        ({"phase": "dancing"}, "phase"),
        ({"gateway_url": 5}, "gateway_url"),
        ({"processes": {"x": "y"}}, "processes"),
    ],
)
def test_a_damaged_state_file_names_the_field(
    paths: LocalPaths, change: dict[str, object], field: str
) -> None:
    data = {**json.loads(a_state(1).to_json()), **change}
    paths.home.mkdir(parents=True)
    paths.state_file.write_text(json.dumps(data))
    with pytest.raises(LocalError) as error:
        read_state(paths.state_file)
    assert f"({field}: " in str(error.value)
    assert "the state file is damaged" in str(error.value)


def test_a_missing_field_and_bad_json_are_reported(paths: LocalPaths) -> None:
    paths.home.mkdir(parents=True)
    data = json.loads(a_state(1).to_json())
    del data["run_id"]
    paths.state_file.write_text(json.dumps(data))
    with pytest.raises(LocalError, match=r"run_id: missing"):
        read_state(paths.state_file)
    paths.state_file.write_text("{")
    with pytest.raises(LocalError, match="the state file is damaged"):
        read_state(paths.state_file)


def test_remove_state_only_removes_its_own_file(paths: LocalPaths) -> None:
    write_state(paths.state_file, a_state(7))
    remove_state(paths.state_file, 8)
    assert paths.state_file.exists(), "another run's state file stays"
    remove_state(paths.state_file, 7)
    assert not paths.state_file.exists()


def test_assess_tells_running_from_stale() -> None:
    assert assess(None) is Condition.NOT_RUNNING
    assert assess(a_state(5), alive=lambda pid: True) is Condition.RUNNING
    assert assess(a_state(5), alive=lambda pid: False) is Condition.STALE
    assert assess(a_state(os.getpid())) is Condition.RUNNING
    assert assess(a_state(dead_pid())) is Condition.STALE


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert not pid_alive(zombie.pid), "a zombie is not running"
    finally:
        zombie.wait()


def test_processes_of_a_run_are_found_by_their_marker_and_stopped(
    marked_process: tuple[str, subprocess.Popen[bytes]],
) -> None:
    run_id, process = marked_process
    assert run_processes(run_id) == [process.pid]
    assert run_processes(run_id + "-other") == []
    stopped = stop_processes([process.pid], grace=10)
    assert stopped == [process.pid]
    assert process.wait(10) is not None


def test_a_second_up_is_refused_while_one_runs(paths: LocalPaths) -> None:
    write_state(paths.state_file, a_state(os.getpid(), home=str(paths.home)))
    with pytest.raises(LocalError) as error:
        clear_stale(paths, sys.stdout)
    message = str(error.value)
    assert f"a local Hearth is already running (pid {os.getpid()}" in message
    assert "hearthctl local status" in message and "hearthctl local down" in message
    # Two `up` at the same moment: the second cannot take the lock.
    with run_lock(paths), pytest.raises(LocalError, match="already running"), run_lock(paths):
        pass


def test_a_stale_state_file_is_cleaned_up_with_what_it_left_running(
    paths: LocalPaths,
    marked_process: tuple[str, subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_id, leftover = marked_process
    write_state(paths.state_file, a_state(dead_pid(), run_id=run_id))
    clear_stale(paths, sys.stdout)
    out = capsys.readouterr().out
    assert f"found a stale state file {paths.state_file}" in out
    assert "is not running any more (it crashed or was killed)" in out
    assert f"stopped 1 process(es) it had left running (pid {leftover.pid})" in out
    assert not paths.state_file.exists()
    assert leftover.wait(10) is not None


def test_a_port_in_use_is_named_with_the_option_to_change_it() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LocalError) as error:
            check_ports(UpOptions(api_port=0, gateway_port=port))
    assert str(error.value).startswith(f"port {port} on 127.0.0.1 is in use, so the gateway")
    assert "--gateway-port PORT" in str(error.value)
    check_ports(UpOptions(api_port=0, gateway_port=port))  # free again: no error


def test_operator_settings_point_pods_at_this_home(paths: LocalPaths) -> None:
    settings = operator_settings(paths)
    assert settings["pvc_mount_root"] == str(paths.pvc)
    assert settings["dataset_mount_root"] == str(paths.datasets)
    assert settings["trainer_env"]["KUBECONFIG"] == str(paths.kubeconfig)
    assert settings["server_command"][0] == sys.executable
    # The operator accepts them as its settings file.
    from hearth_operator.settings import settings_from_mapping

    assert settings_from_mapping(settings).pvc_mount_root == str(paths.pvc)


def test_status_and_down_when_nothing_runs(
    paths: LocalPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(paths.home)]
    assert cli.main(["status", *home]) == 1
    assert f"no local Hearth is running (no state file {paths.state_file})" in (
        capsys.readouterr().out
    )
    assert cli.main(["down", *home]) == 0
    assert "no local Hearth is running" in capsys.readouterr().out


def test_status_of_a_crashed_run_says_stale_and_down_cleans_it(
    paths: LocalPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(paths.home)]
    write_state(paths.state_file, a_state(dead_pid(), run_id="gone"))
    assert cli.main(["status", *home]) == 1
    assert "not running: the state file" in capsys.readouterr().out
    assert paths.state_file.exists(), "status changes nothing"
    assert cli.main(["down", *home]) == 0
    assert "found a stale state file" in capsys.readouterr().out
    assert not paths.state_file.exists()


def test_a_damaged_state_file_is_one_clear_line(
    paths: LocalPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    paths.home.mkdir(parents=True)
    paths.state_file.write_text("[]")
    assert cli.main(["status", "--home", str(paths.home)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hearthctl local status: ")
    assert "the state file is damaged (expected a JSON object)" in err


def test_a_bad_account_or_user_id_is_refused_before_anything_starts(
    paths: LocalPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(paths.home)]
    assert cli.main(["up", *home, "--account", "Acme"]) == 1
    assert "--account/--user: account ID 'Acme' contains 'A' at position 0" in (
        capsys.readouterr().err
    )
    assert cli.main(["up", *home, "--account", "hearth-system"]) == 1
    assert "is reserved" in capsys.readouterr().err
    assert cli.main(["up", *home, "--user", "a_b"]) == 1
    assert "user ID 'a_b'" in capsys.readouterr().err
    assert not paths.state_file.exists()
