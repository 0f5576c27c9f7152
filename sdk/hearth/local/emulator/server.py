"""Serving the emulated API over real HTTP on 127.0.0.1, from a background thread.

Why not `kmock.Server`: it installs a process-wide DNS interceptor into aiohttp
(class-level monkeypatching that must be unwound in LIFO order), which does not
mix with several emulators, kopf's and the kubelet's own aiohttp sessions living
in other threads. The request handler *is* kmock's (:class:`EmulatorHandler` is a
`kmock.RawHandler`), so tests keep kmock's request log and its DSL for fault
injection, e.g. ``api.kmock['patch', kmock.resource('v1/pods')] << 500``; only
requests that no such reaction answers reach the emulator.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import pathlib
import tempfile
import threading
import traceback
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml
from typing_extensions import override

from hearth.local.background import BackgroundLoop
from hearth.local.emulator import protobuf
from hearth.local.emulator.api import KubeEmulator, parse_route
from hearth.local.emulator.errors import ApiError
from hearth.local.emulator.patching import MERGE_PATCH
from hearth.local.emulator.resources import ResourceType
from hearth.local.emulator.store import Obj, Validator

T = TypeVar("T")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@attrs.define(kw_only=True)
class EmulatorHandler(kmock.RawHandler):
    """kmock's handler: user reactions first, then the emulator."""

    emulator: KubeEmulator
    record_requests: bool = False  # kmock's request log costs ~10 kB a request
    internal_errors: list[str] = attrs.field(factory=list)

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock's own request parser fails on some valid paths (`/api/v1/namespaces`), so
        # requests are parsed here with the emulator's router and then handled as kmock does.
        try:
            request = await self._parse(raw_request)
        except Exception as exc:
            return await self._render_error(exc)
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:
            if self._errors:
                self._errors[-1].append(exc)
            return await self._render_error(exc)

    async def _parse(self, raw: aiohttp.web.BaseRequest) -> kmock.Request:
        body = await raw.read()
        text = body.decode(errors="replace")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        if "protobuf" in raw.content_type:
            data = protobuf.decode(body)  # Secrets and ConfigMaps only; None otherwise
        route = parse_route(raw.path)
        resource = namespace = name = subresource = action = None
        if route is not None and route.plural is not None:
            resource = kmock.resource(group=route.group, version=route.version, plural=route.plural)
            namespace, name, subresource = route.namespace, route.name, route.subresource
            watching = raw.method == "GET" and raw.query.get("watch") in ("true", "1")
            action = (
                kmock.action.WATCH
                if watching
                else {
                    "GET": kmock.action.FETCH if name else kmock.action.LIST,
                    "POST": None if name else kmock.action.CREATE,
                    "PATCH": kmock.action.UPDATE,
                    "PUT": kmock.action.UPDATE,
                    "DELETE": kmock.action.DELETE,
                }.get(raw.method)
            )
        return kmock.Request(
            id=len(self._requests),
            raw_request=raw,
            url=raw.url,
            method=raw.method,
            params=dict(raw.query),
            headers=dict(raw.headers),
            cookies=dict(raw.cookies),
            data=data,
            body=body,
            text=text,
            action=action,
            resource=resource,
            namespace=namespace,
            name=name,
            subresource=subresource,
        )

    @override
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        try:
            try:
                return await super()._handle(request)  # reactions declared by the test
            except NotImplementedError:
                pass
            raw = request._raw_request
            assert raw is not None
            return await self.emulator.handle(raw, request.data)
        finally:
            if not self.record_requests:
                # Benchmarks create thousands of objects: do not keep every request body.
                with contextlib.suppress(ValueError):
                    self._requests.remove(request)

    @override
    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, ApiError):
            body = exc.status_body()
            code = exc.code
        else:
            # A bug in the emulator (or an exception injected by a test reaction): a 500 with
            # the traceback, remembered so that the server can report it at exit.
            self.internal_errors.append("".join(traceback.format_exception(exc)))
            code = 500
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "reason": "InternalError",
                "code": 500,
                "message": repr(exc),
            }
        return aiohttp.web.Response(
            body=json.dumps(body).encode(), status=code, content_type="application/json"
        )


class KubeEmulatorServer:
    """An emulated Kubernetes API server, over HTTP, in a background thread.

    Usage::

        with KubeEmulatorServer(crds=['crds/']) as api:
            kubernetes.config.load_kube_config(config_file=str(api.kubeconfig_path))
            ...

    It is an emulation of the API server (see docs/testing-harness.md), not a cluster.
    """

    def __init__(
        self,
        *,
        crds: Iterable[str | pathlib.Path] = (),
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: str | pathlib.Path | None = None,
        validators: Iterable[Validator] = (),
        record_requests: bool = False,
        history_size: int = 10_000,
        state_file: str | pathlib.Path | None = None,
        save_interval: float = 1.0,
    ) -> None:
        #: Objects are loaded from this JSON file at start (when it exists), saved to it
        #: every ``save_interval`` seconds while something changed, and at stop.
        self.state_file = pathlib.Path(state_file) if state_file is not None else None
        self.save_interval = save_interval
        #: Objects of the state file that could not be loaded (their kind is not served).
        self.restore_skipped: list[str] = []
        self._saved_rv = -1
        self._save_lock = threading.Lock()  # the periodic save's thread vs the final save
        self.emulator = KubeEmulator(validators=list(validators), history_size=history_size)
        self.kmock = EmulatorHandler(emulator=self.emulator, record_requests=record_requests)
        self._host = host
        self._port = port
        self._crd_sources = list(crds)
        self._namespaces = list(namespaces)
        self._workdir_arg = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner = BackgroundLoop("kube-emulator", self._serve)
        self.port = 0
        self.workdir = pathlib.Path(".")

    # ----- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def kubeconfig_path(self) -> pathlib.Path:
        return self.workdir / "kubeconfig"

    def __enter__(self) -> KubeEmulatorServer:
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
        if self._workdir_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kube-emulator-")
            self.workdir = pathlib.Path(self._tmp.name)
        else:
            self.workdir = pathlib.Path(self._workdir_arg)
            self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._runner.start()
        except BaseException:
            self.stop()  # removes the work directory: __exit__ is not called when this raises
            raise
        self._write_kubeconfig()
        for namespace in self._namespaces:
            if self.get("v1", "Namespace", namespace) is None:  # a restored one stays as it was
                self.create(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                )
        for source in self._crd_sources:
            self.load_crds(source)

    def stop(self) -> None:
        try:
            self._runner.stop()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    async def _serve(self) -> None:
        if self.state_file is not None and self.state_file.exists():
            self._restore(self.state_file)
        async with self.kmock:
            server = aiohttp.web.Server(self.kmock, handler_cancellation=True)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=2.0)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, self._host, self._port)
            await site.start()
            self.port = int(runner.addresses[0][1])
            controllers = asyncio.create_task(self.emulator.run_controllers())
            saver = asyncio.create_task(self._save_periodically())
            self._runner.ready.set()
            try:
                await self._runner.stop_requested.wait()
            finally:
                self.emulator.close_watches()
                await asyncio.sleep(0)
                for task in (controllers, saver):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await runner.cleanup()
                if self.state_file is not None:
                    self._write_state(self.emulator.store.snapshot())  # nothing writes now

    # ----- persistence ------------------------------------------------------------------------

    def _restore(self, path: pathlib.Path) -> None:
        try:
            snapshot = json.loads(path.read_text())
            if not isinstance(snapshot, dict):
                raise ValueError("expected a JSON object")
            self.restore_skipped = self.emulator.store.restore(snapshot)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"cannot load the emulator's objects from {path}: {exc}") from exc
        self._saved_rv = self.emulator.store.resource_version

    def save_state(self) -> None:
        """Write every object to ``state_file`` now (thread-safe)."""
        if self.state_file is None:
            raise RuntimeError("this emulator has no state_file")
        self._write_state(self.call(self.emulator.store.snapshot))

    def _write_state(self, snapshot: dict[str, Any]) -> None:
        """Atomically: a crash leaves the previous file or the new one, never half of one."""
        assert self.state_file is not None
        with self._save_lock:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_file.with_name(self.state_file.name + ".partial")
            with partial.open("w") as out:
                json.dump(snapshot, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            partial.replace(self.state_file)
            self._saved_rv = int(snapshot["resourceVersion"])

    async def _save_periodically(self) -> None:
        if self.state_file is None:
            return
        while True:
            await asyncio.sleep(self.save_interval)
            store = self.emulator.store
            if store.resource_version != self._saved_rv:
                # Stored objects are never changed in place: the snapshot can be written
                # from a worker thread while the loop goes on serving.
                await asyncio.to_thread(self._write_state, store.snapshot())

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": "default"},
                }
            ],
            "current-context": "emulator",
        }
        self.kubeconfig_path.write_text(yaml.safe_dump(config))

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of 500s the emulator produced (a test may assert it is empty)."""
        return list(self.kmock.internal_errors)

    # ----- direct access to the state (thread-safe: runs on the server loop) ----------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop, where the store lives, and return its result
        (at once when called on the loop, e.g. from a kmock reaction)."""
        return self._runner.call(fn)

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run_coroutine(coro)

    def _rtype(self, api_version: str, kind: str) -> ResourceType:
        rtype = self.emulator.registry.find_kind(api_version, kind)
        if rtype is None:
            raise LookupError(f"the emulator serves no {kind} in {api_version}")
        return rtype

    def create(self, obj: Obj) -> Obj:
        rtype = self._rtype(obj["apiVersion"], obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace") or (
            "default" if rtype.namespaced else None
        )
        return self.call(lambda: self.emulator.store.create(rtype, namespace, obj))

    def apply(self, obj: Obj) -> Obj:
        """Create the object, or merge-patch the manifest's fields into the existing one.

        Like `kubectl apply` for the fields a manifest sets: what controllers added (kopf's
        finalizers and annotations, status) is kept. Unlike it, a field removed from the
        manifest is not removed from the object (there is no last-applied record).
        """
        rtype = self._rtype(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or ("default" if rtype.namespaced else None)

        def run() -> Obj:
            store = self.emulator.store
            existing = store.find(rtype.group_plural, namespace, meta["name"])
            if existing is None:
                return store.create(rtype, namespace, obj)
            return store.patch(rtype, namespace, meta["name"], obj, MERGE_PATCH)

        return self.call(run)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        rtype = self._rtype(api_version, kind)
        return self.call(
            lambda: self.emulator.store.find(
                rtype.group_plural, namespace if rtype.namespaced else None, name
            )
        )

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> builtins.list[Obj]:
        rtype = self._rtype(api_version, kind)
        return self.call(
            lambda: self.emulator.store.list(rtype, namespace, label_selector=label_selector)
        )

    def dump(self) -> str:
        """All stored objects as YAML documents, for a test to show when it fails."""
        objects = self.call(lambda: [obj for _, obj in self.emulator.store.all_objects()])
        return yaml.safe_dump_all(objects, sort_keys=False)

    def apply_yaml(self, path: str | pathlib.Path) -> builtins.list[Obj]:
        """Apply every document of a YAML file (or every *.yaml file of a directory)."""
        path = pathlib.Path(path)
        files = (
            sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
        )
        result: builtins.list[Obj] = []
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if doc:
                    result.append(self.apply(doc))
        return result

    def load_crds(self, path: str | pathlib.Path) -> builtins.list[Obj]:
        """Load CustomResourceDefinitions from a YAML file or a directory of them."""
        return self.apply_yaml(path)
