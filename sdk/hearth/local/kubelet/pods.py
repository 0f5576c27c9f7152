"""One pod on the process kubelet: its containers as local process groups.

A :class:`PodWorker` owns a pod from binding to removal. Each container runs
`command + args` as its own process group (so everything it spawns is killed
with it), logs to a file, restarts per `restartPolicy` with exponential backoff,
and is probed (startup, then readiness and liveness). Every state change becomes
a merge patch of `pods/<name>/status` that looks like a real kubelet's report:
phase, podIP, conditions (PodScheduled, Initialized, ContainersReady, Ready) and
containerStatuses with running/terminated/waiting states and restart counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import os
import pathlib
import signal
from typing import TYPE_CHECKING, Any

import aiohttp

from hearth.local.kubelet.client import ApiStatusError
from hearth.local.kubelet.env import EnvError, container_env, expand_args
from hearth.local.kubelet.probes import ProbeSpec, ProbeState, check
from hearth.local.kubelet.volumes import VolumeError, project_config_maps

if TYPE_CHECKING:
    from hearth.local.kubelet.kubelet import ProcessKubelet


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    """A process killed by signal N exits with 128+N in a container runtime."""
    return 128 - returncode if returncode < 0 else returncode


@dataclasses.dataclass
class ContainerRun:
    spec: dict[str, Any]
    init: bool = False
    process: asyncio.subprocess.Process | None = None
    restart_count: int = 0
    state: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = dataclasses.field(default_factory=dict)
    ready: bool = False
    started: bool = False
    finished: bool = False  # terminated and will not be restarted
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "containerID": f"process://{self.process.pid}" if self.process else "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodWorker:
    def __init__(self, kubelet: ProcessKubelet, pod: dict[str, Any], pod_ip: str) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.pod_ip = pod_ip
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.uid: str = pod["metadata"]["uid"]
        spec = pod.get("spec", {})
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init_runs = [ContainerRun(c, init=True) for c in spec.get("initContainers") or []]
        self.runs = [ContainerRun(c) for c in spec.get("containers") or []]
        self._resume_counts(pod)
        self.start_time = now()
        self.terminating = False
        self.initialized = not self.init_runs
        self.failure_message: str | None = None
        self._dirty = asyncio.Event()
        self._published: dict[str, Any] | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._main: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None

    def _resume_counts(self, pod: dict[str, Any]) -> None:
        """A pod that ran before this kubelet started (a restart of ``hearthctl local up``, like
        a node that rebooted) starts its containers again as restarts: ``restartCount`` goes
        on from the reported one, so that whoever tracks restarts (the operator reloads LoRA
        adapters into a restarted server) sees that these are new processes."""
        reported = {
            status.get("name"): status
            for status in (pod.get("status") or {}).get("containerStatuses") or []
        }
        for run in self.runs:
            previous = reported.get(run.name)
            ran = {"running", "terminated"} & set(previous.get("state") or {}) if previous else None
            if previous and ran:
                run.restart_count = int(previous.get("restartCount") or 0) + 1

    # ----- paths and status ------------------------------------------------------------------

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"

    def log_path(self, container: str) -> pathlib.Path:
        return self.kubelet.log_dir / f"{self.namespace}_{self.name}_{container}.log"

    def phase(self) -> str:
        if self.failure_message and all(r.finished or r.process is None for r in self.runs):
            return "Failed"
        if not self.initialized or any(
            r.exit_code is None and r.process is None and not r.finished for r in self.runs
        ):
            return "Pending"
        if all(r.finished for r in self.runs):
            return "Succeeded" if all(r.exit_code == 0 for r in self.runs) else "Failed"
        return "Running"

    def status(self) -> dict[str, Any]:
        phase = self.phase()
        ready = phase == "Running" and all(r.ready for r in self.runs) and not self.terminating
        containers_ready = all(r.ready for r in self.runs)

        def condition(kind: str, value: bool, reason: str | None = None) -> dict[str, Any]:
            text = "True" if value else "False"
            previous = self._transitions.get(kind)
            if previous is None or previous[0] != text:  # only a change moves the time
                self._transitions[kind] = previous = (text, now())
            item: dict[str, Any] = {
                "type": kind,
                "status": text,
                "lastProbeTime": None,
                "lastTransitionTime": previous[1],
            }
            if reason and not value:
                item["reason"] = reason
            return item

        status: dict[str, Any] = {
            "phase": phase,
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "hostIP": self.kubelet.host_ip,
            "hostIPs": [{"ip": self.kubelet.host_ip}],
            "startTime": self.start_time,
            "qosClass": self.pod.get("status", {}).get("qosClass", "BestEffort"),
            "conditions": [
                condition("PodScheduled", True),
                condition("Initialized", self.initialized, "ContainersNotInitialized"),
                condition("ContainersReady", containers_ready, "ContainersNotReady"),
                condition("Ready", ready, "ContainersNotReady"),
            ],
            "containerStatuses": [r.status() for r in self.runs],
        }
        if self.init_runs:
            status["initContainerStatuses"] = [r.status() for r in self.init_runs]
        if self.failure_message:
            status["message"] = self.failure_message
        return status

    def changed(self) -> None:
        self._dirty.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.publish()
            except (ApiStatusError, aiohttp.ClientError) as exc:
                # The API refused or was unreachable: report again soon, as a kubelet would.
                self.kubelet.logger.warning(
                    "status of %s/%s not reported: %s", self.namespace, self.name, exc
                )
                await asyncio.sleep(0.5)
                self._dirty.set()

    async def publish(self) -> None:
        status = self.status()
        comparable = copy.deepcopy(status)
        if comparable == self._published:
            return
        try:
            await self.kubelet.client.merge_patch(f"{self.path}/status", {"status": status})
            self._published = comparable
        except ApiStatusError as exc:
            if exc.status != 404:  # gone already: nothing to report
                raise

    # ----- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish_loop())
        self._main = asyncio.create_task(self._run())

    async def _run(self) -> None:
        self.changed()
        for run in self.init_runs:
            while not self.terminating:
                await self._run_once(run)
                if run.exit_code == 0:
                    break
                if self.restart_policy == "Never":
                    self.failure_message = f"init container {run.name} failed"
                    for main in self.runs:
                        main.finished = True
                    self.changed()
                    return
                await self._backoff(run)
            if self.terminating:
                return
        self.initialized = True
        self.changed()
        self._tasks = [asyncio.create_task(self._container_loop(run)) for run in self.runs]
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.changed()

    async def _backoff(self, run: ContainerRun) -> None:
        delay = min(
            self.kubelet.backoff_base * 2 ** max(run.restart_count - 1, 0), self.kubelet.backoff_max
        )
        run.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container {run.name}",
            }
        }
        self.changed()
        await asyncio.sleep(delay)

    async def _container_loop(self, run: ContainerRun) -> None:
        while not self.terminating:
            await self._run_once(run)
            if self.terminating:
                break
            if self.restart_policy == "Never" or (
                self.restart_policy == "OnFailure" and run.exit_code == 0
            ):
                run.finished = True
                self.changed()
                break
            run.restart_count += 1
            run.last_state = run.state
            await self._backoff(run)
        run.finished = True
        self.changed()

    async def _run_once(self, run: ContainerRun) -> None:
        spec = run.spec
        # As with a container runtime: `command` replaces the image's entrypoint and `args`
        # its default arguments; an image's entrypoint is known only from `image_commands`.
        command = spec.get("command") or self.kubelet.entrypoint(str(spec.get("image", "")))
        argv = list(command or []) + list(spec.get("args") or [])
        if not command:
            run.state = {
                "waiting": {
                    "reason": "CreateContainerError",
                    "message": "the process kubelet needs a command: set "
                    "spec.containers[].command or map the image in "
                    "ProcessKubelet(image_commands=...)",
                }
            }
            run.exit_code, run.finished = 1, True
            self.failure_message = run.state["waiting"]["message"]
            self.changed()
            return
        try:
            env = await container_env(
                self.kubelet.client,
                self.pod,
                spec,
                self.pod_ip,
                self.kubelet.host_ip,
                self.kubelet.base_env(),
            )
        except EnvError as exc:
            run.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            self.changed()
            await asyncio.sleep(self.kubelet.backoff_base)
            run.exit_code = 1
            return
        try:
            await project_config_maps(
                self.kubelet.client, self.pod, spec, self.kubelet.volume_roots
            )
        except VolumeError as exc:
            run.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            self.changed()
            await asyncio.sleep(self.kubelet.backoff_base)
            run.exit_code = 1
            return
        argv = expand_args(argv, env)
        cwd = spec.get("workingDir")
        if not cwd or not pathlib.Path(cwd).is_dir():  # noqa: ASYNC240  (a local stat)
            cwd = str(self.kubelet.workdir)
        log_path = self.log_path(run.name)
        with log_path.open("ab") as log:
            log.write(
                f"--- {now()} starting {run.name} (restart {run.restart_count}): "
                f"{argv!r}\n".encode()
            )
            log.flush()
            try:
                run.process = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    cwd=cwd,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                log.write(f"--- failed to start: {exc}\n".encode())
                run.state = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": str(exc),
                        "startedAt": now(),
                        "finishedAt": now(),
                    }
                }
                run.exit_code = 128
                self.changed()
                return
        started_at = now()
        run.exit_code = None
        run.state = {"running": {"startedAt": started_at}}
        run.ready = False
        run.started = "startupProbe" not in spec
        self.changed()
        probes = asyncio.create_task(self._probe(run)) if not run.init else None
        returncode = await run.process.wait()
        if probes is not None:
            probes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
        run.exit_code = exit_code(returncode)
        run.ready = False
        run.state = {
            "terminated": {
                "exitCode": run.exit_code,
                "reason": "Completed" if run.exit_code == 0 else "Error",
                "startedAt": started_at,
                "finishedAt": now(),
                "containerID": f"process://{run.process.pid}",
            }
        }
        self.changed()

    async def _probe(self, run: ContainerRun) -> None:
        """Startup probe first; then readiness and liveness, each on its own period."""
        spec = run.spec
        env = self.kubelet.base_env()
        session = self.kubelet.client.session
        if "readinessProbe" not in spec and "startupProbe" not in spec:
            run.ready = True
            run.started = True
            self.changed()
        if "startupProbe" in spec:
            startup = ProbeState(self._probe_spec("startupProbe", spec))
            await asyncio.sleep(startup.spec.initial_delay)
            while startup.verdict is None:
                startup.record(await check(startup.spec, spec, self.pod_ip, session, env))
                if startup.verdict is None:
                    await asyncio.sleep(startup.spec.period)
            if not startup.verdict:
                await self._kill(run, "startup probe failed")
                return
            run.started = True
            if "readinessProbe" not in spec:
                run.ready = True
            self.changed()
        loops = []
        if "readinessProbe" in spec:
            loops.append(self._readiness(run, self._probe_spec("readinessProbe", spec), env))
        if "livenessProbe" in spec:
            loops.append(self._liveness(run, self._probe_spec("livenessProbe", spec), env))
        await asyncio.gather(*loops)

    def _probe_spec(self, kind: str, container: dict[str, Any]) -> ProbeSpec:
        return ProbeSpec(container[kind], self.kubelet.probe_period_cap)

    async def _readiness(self, run: ContainerRun, probe: ProbeSpec, env: dict[str, str]) -> None:
        state = ProbeState(probe)
        await asyncio.sleep(probe.initial_delay)
        while True:
            verdict = state.record(
                await check(probe, run.spec, self.pod_ip, self.kubelet.client.session, env)
            )
            if verdict is not None and verdict != run.ready:
                run.ready = verdict
                self.changed()
            await asyncio.sleep(probe.period)

    async def _liveness(self, run: ContainerRun, probe: ProbeSpec, env: dict[str, str]) -> None:
        state = ProbeState(probe)
        await asyncio.sleep(probe.initial_delay)
        while True:
            if (
                state.record(
                    await check(probe, run.spec, self.pod_ip, self.kubelet.client.session, env)
                )
                is False
            ):
                await self._kill(run, "liveness probe failed")
                return
            await asyncio.sleep(probe.period)

    async def _kill(self, run: ContainerRun, why: str, grace: float = 0) -> None:
        process = run.process
        if process is None or process.returncode is not None:
            return
        with self.log_path(run.name).open("ab") as log:
            log.write(f"--- {now()} killing {run.name}: {why}\n".encode())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        if grace > 0:
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        # Children that left the group's leader behind are killed with the group too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    async def terminate(self, grace: float, *, report: bool = True) -> None:
        """Stop all containers (SIGTERM, SIGKILL after the grace period).

        Without ``report`` (the kubelet itself stops, like a node going away) nothing more
        is published, not even the containers' exits: the pod keeps its last reported
        status, and a kubelet started later runs it again (as restarts).
        """
        self.terminating = True
        if not report and self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        runs = self.init_runs + self.runs
        await asyncio.gather(*(self._kill(run, "pod is terminating", grace) for run in runs))
        for task in [self._main, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # A container being started while the first pass ran is caught by a second one.
        await asyncio.gather(*(self._kill(run, "pod is terminating") for run in runs))
        for run in self.runs:
            run.ready = False
            run.finished = True
            if run.exit_code is None:
                run.exit_code = 137
        if report:
            with contextlib.suppress(ApiStatusError):
                await self.publish()
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
