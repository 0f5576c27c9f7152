"""The process kubelet: runs the pods of the emulated cluster as local processes.

It is a separate component that only talks to the API over HTTP, like a real
kubelet (plus the scheduler's one job: binding unbound pods to its node). It
watches pods, runs each one with a :class:`PodWorker`, gives every pod its own
loopback address (all of 127.0.0.0/8 is local on Linux, so a server bound to its
POD_IP gets a real address and keeps its real port), and
finishes graceful deletions: SIGTERM, SIGKILL after the grace period, then a DELETE
with grace period 0.

``fake_ready=True`` starts nothing and reports every pod Running and Ready at once,
for benchmarks of the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import pathlib
import random
import sys
import tempfile
from collections.abc import Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any

import aiohttp

from hearth.local.background import BackgroundLoop
from hearth.local.emulator import KubeEmulatorServer
from hearth.local.kubelet.client import ApiStatusError, KubeClient
from hearth.local.kubelet.jobs import JobController
from hearth.local.kubelet.pods import PodWorker, now

logger = logging.getLogger("hearth.local.kubelet")


def random_first_ip() -> str:
    """A first pod address in a block of its own (127.128-250.x.1). Two kubelets on one
    machine (two test sessions, a local Hearth beside the tests) would otherwise start
    servers on the same POD_IP:port, and one cluster's requests would reach the other's."""
    return f"127.{random.randint(128, 250)}.{random.randint(0, 255)}.1"


class ProcessKubelet:
    def __init__(
        self,
        api: KubeEmulatorServer | str,
        *,
        node_name: str = "process-node",
        node_labels: Mapping[str, str] | None = None,
        enforce_node_selector: bool = False,
        log_dir: str | pathlib.Path | None = None,
        workdir: str | pathlib.Path | None = None,
        env: Mapping[str, str] | None = None,
        image_commands: Mapping[str, list[str]] | None = None,
        inherit_env: bool = True,
        fake_ready: bool = False,
        run_jobs: bool = True,
        first_ip: str | None = None,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        probe_period_cap: float | None = None,
        volume_roots: Iterable[str | pathlib.Path] = (),
    ) -> None:
        self.api = api
        #: configMap volumes mounted under these directories are projected as files.
        self.volume_roots = [pathlib.Path(root).resolve() for root in volume_roots]
        self.url = api if isinstance(api, str) else api.url
        self.node_name = node_name
        self.node_labels = dict(node_labels or {})
        self.enforce_node_selector = enforce_node_selector
        self._unschedulable: set[str] = set()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="process-kubelet-")
            log_dir = self._tmp.name
        self.log_dir = pathlib.Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.workdir = pathlib.Path(workdir) if workdir is not None else pathlib.Path.cwd()
        self.extra_env = dict(env or {})
        self.image_commands = {k: list(v) for k, v in (image_commands or {}).items()}
        self.inherit_env = inherit_env
        self.fake_ready = fake_ready
        self.run_jobs = run_jobs
        self.host_ip = "127.0.0.1"
        self._first_ip = self._next_ip = ipaddress.IPv4Address(first_ip or random_first_ip())
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.probe_period_cap = probe_period_cap
        self.logger = logger
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._client: KubeClient | None = None
        # Stopping kills every container (a second's grace each, all at once): 60 s is ample.
        self._runner = BackgroundLoop("process-kubelet", self._main, stop_timeout=60.0)
        self._background: set[asyncio.Task[None]] = set()
        self._started: list[PodWorker] = []  # every worker, to kill all at stop

    @property
    def client(self) -> KubeClient:
        assert self._client is not None
        return self._client

    def base_env(self) -> dict[str, str]:
        """What every container starts from: this process's env (PATH, the virtualenv) when
        ``inherit_env``, since the processes run on this machine rather than in an image."""
        base = dict(os.environ) if self.inherit_env else {"PATH": os.environ.get("PATH", "")}
        # Console scripts of this interpreter's environment (hearth-server, ...) come first,
        # even when the tests run as `.venv/bin/python -m pytest` without an activated venv.
        bin_dir = str(pathlib.Path(sys.executable).parent)
        base["PATH"] = os.pathsep.join([bin_dir, base.get("PATH", "")])
        base.setdefault("PYTHON", sys.executable)
        base.update(self.extra_env)
        return base

    def entrypoint(self, image: str) -> list[str] | None:
        """The command an image would run (its ENTRYPOINT), from ``image_commands``: by exact
        image, then without the tag or digest."""
        if image in self.image_commands:
            return self.image_commands[image]
        name = image.split("@", 1)[0]
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        return self.image_commands.get(name)

    def allocate_ip(self) -> str:
        """The next address, never one just released: like most CNI plugins, addresses are
        handed out in order and reused only after wrapping around, so a new pod is never
        mistaken for a deleted one by its IP."""
        address = self._next_ip
        self._next_ip += 1
        while str(self._next_ip).endswith((".0", ".255")):
            self._next_ip += 1
        if self._next_ip >= ipaddress.IPv4Address("127.255.255.255"):
            self._next_ip = self._first_ip
        return str(address)

    # ----- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ProcessKubelet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._runner.start()
        except BaseException:
            self.stop()  # removes the log directory: __exit__ is not called when this raises
            raise
        if isinstance(self.api, KubeEmulatorServer):
            self.api.emulator.log_source = self.read_log

    def stop(self) -> None:
        try:
            self._runner.stop()
        finally:
            if (
                isinstance(self.api, KubeEmulatorServer)
                and self.api.emulator.log_source == self.read_log
            ):
                self.api.emulator.log_source = None
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    async def _main(self) -> None:
        async with KubeClient(self.url) as client:
            self._client = client
            await self._register_node()
            tasks = [asyncio.create_task(self._watch_pods())]
            if self.run_jobs:
                tasks.append(asyncio.create_task(JobController(client).run()))
            self._runner.ready.set()
            try:
                await self._runner.stop_requested.wait()
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                # Stopping the kubelet kills what it started; the API objects stay (as when a
                # node dies), so that a test can still read their last reported status.
                # Pods still in their grace period are not waited for: every process this
                # kubelet started is stopped now (SIGTERM, SIGKILL after a second).
                everyone = list(self._started)
                for task in list(self._background):
                    task.cancel()
                await asyncio.gather(*self._background, return_exceptions=True)
                await asyncio.gather(*(worker.terminate(1.0, report=False) for worker in everyone))
                self.workers.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {"kubernetes.io/hostname": self.node_name, **self.node_labels},
            },
            "status": {
                "addresses": [{"type": "InternalIP", "address": self.host_ip}],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        try:
            await self.client.request("POST", "/api/v1/nodes", node)
        except ApiStatusError as exc:
            if exc.status != 409:
                raise

    async def _watch_pods(self) -> None:
        """List, then watch from the list's resourceVersion; relist when the watch ends."""
        while True:
            try:
                listing = await self.client.get("/api/v1/pods")
                for pod in listing["items"]:
                    await self._on_pod("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                while True:
                    async for event in self.client.watch("/api/v1/pods", {"resourceVersion": rv}):
                        if event["type"] == "ERROR":
                            raise ApiStatusError(event["object"].get("code", 500), str(event))
                        rv = event["object"]["metadata"]["resourceVersion"]
                        await self._on_pod(event["type"], event["object"])
            except asyncio.CancelledError:
                raise
            except (ApiStatusError, aiohttp.ClientError, OSError) as exc:
                self.logger.info("pod watch interrupted (%s); relisting", exc)
                await asyncio.sleep(0.2)
            except Exception:
                # A bug here must not silently stop all pods from being run: log and relist.
                self.logger.exception("pod handling failed; relisting")
                await asyncio.sleep(0.2)

    async def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None and not worker.terminating:
                # Force-deleted (or deleted elsewhere) while running: stop it at once.
                worker.terminating = True
                self._spawn(self._finish(worker, 0, delete=False))
            return
        node = pod.get("spec", {}).get("nodeName")
        if node and node != self.node_name:
            return
        if worker is not None:
            worker.pod = pod
            if meta.get("deletionTimestamp") and not worker.terminating:
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                worker.terminating = True
                self._spawn(self._finish(worker, grace, delete=True))
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            if meta.get("deletionTimestamp"):
                await self._delete(pod)
            return
        if meta.get("deletionTimestamp"):
            await self._delete(pod)  # never started here: nothing to stop
            return
        if not node and not self._fits(pod):
            await self._report_unschedulable(pod)
            return
        if not node and not await self._bind(pod):
            return
        worker = PodWorker(self, pod, self.allocate_ip())
        self.workers[uid] = worker
        self._started.append(worker)
        if self.fake_ready:
            await self._report_fake_ready(worker)
        else:
            worker.start()

    def _fits(self, pod: dict[str, Any]) -> bool:
        """The scheduler's node-selector check, when asked for (``enforce_node_selector``)."""
        if not self.enforce_node_selector:
            return True
        labels = {"kubernetes.io/hostname": self.node_name, **self.node_labels}
        wanted = pod.get("spec", {}).get("nodeSelector") or {}
        return all(labels.get(key) == value for key, value in wanted.items())

    async def _report_unschedulable(self, pod: dict[str, Any]) -> None:
        """What the scheduler reports for a pod no node fits: it stays Pending."""
        meta = pod["metadata"]
        if meta["uid"] in self._unschedulable:
            return
        self._unschedulable.add(meta["uid"])
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "lastProbeTime": None,
            "lastTransitionTime": now(),
            "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node "
            "affinity/selector.",
        }
        with contextlib.suppress(ApiStatusError):
            await self.client.merge_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"status": {"phase": "Pending", "conditions": [condition]}},
            )

    async def _bind(self, pod: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            await self.client.request(
                "POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body
            )
        except ApiStatusError as exc:
            if exc.status in (404, 409):
                return False  # deleted meanwhile, or bound elsewhere
            raise
        return True

    async def _report_fake_ready(self, worker: PodWorker) -> None:
        for run in worker.runs:
            run.ready = run.started = True
            run.state = {"running": {"startedAt": now()}}
            run.process = None
        worker.initialized = True
        status = worker.status()
        status["phase"] = "Running"
        for condition in status["conditions"]:
            condition["status"] = "True"
            condition.pop("reason", None)
        with contextlib.suppress(ApiStatusError):
            await self.client.merge_patch(f"{worker.path}/status", {"status": status})

    async def _finish(self, worker: PodWorker, grace: float, *, delete: bool) -> None:
        try:
            await worker.terminate(grace, report=delete)
            if delete:
                await self._delete(worker.pod)
        finally:
            self.workers.pop(worker.uid, None)
            if not any(
                run.process is not None and run.process.returncode is None
                for run in worker.runs + worker.init_runs
            ):
                with contextlib.suppress(ValueError):
                    self._started.remove(worker)

    async def _delete(self, pod: dict[str, Any]) -> None:
        """What a kubelet does once containers are gone: delete with grace 0 (and the uid as a
        precondition, so that a new pod with the same name is never hit)."""
        meta = pod["metadata"]
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        with contextlib.suppress(ApiStatusError):
            await self.client.request(
                "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body
            )

    # ----- logs ---------------------------------------------------------------------------------

    def read_log(self, namespace: str, pod: str, container: str | None = None) -> str | None:
        pattern = f"{namespace}_{pod}_{container}.log" if container else f"{namespace}_{pod}_*.log"
        files = sorted(self.log_dir.glob(pattern))
        if not files:
            return None
        return "".join(file.read_text(errors="replace") for file in files)

    def dump_logs(self) -> str:
        """All container logs, for showing when a test fails."""
        parts = []
        for file in sorted(self.log_dir.glob("*.log")):
            parts.append(f"===== {file.name} =====\n{file.read_text(errors='replace')}")
        return "\n".join(parts)
