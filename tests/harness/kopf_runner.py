"""Run the real kopf operator against the emulated API, in a background thread.

kopf's own `KopfRunner` runs the `kopf run` CLI for a module; operators under test
are usually a registry of handlers instead, so this runs :func:`kopf.operator` with
that registry on its own event loop, logs in to the emulator (a login handler is
added to the registry), and stops it through kopf's `stop_flag`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection
from types import TracebackType
from typing import Any

import kopf

from tests.harness.emulator import KubeEmulatorServer


def emulator_login(api: KubeEmulatorServer) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(
        server=api.url, scheme="Bearer", token="emulator-token", default_namespace="default"
    )


class KopfOperator:
    """``with KopfOperator(api, registry): ...`` runs kopf for the duration of the block."""

    def __init__(
        self,
        api: KubeEmulatorServer,
        registry: kopf.OperatorRegistry,
        *,
        namespaces: Collection[str] = (),
        settings: kopf.OperatorSettings | None = None,
        memo: Any = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.api = api
        self.registry = registry
        self.namespaces = list(namespaces)
        self.settings = settings or kopf.OperatorSettings()
        # Standalone: no peering resources exist in the emulator (as in a fresh cluster).
        self.settings.peering.standalone = True
        self.memo = memo
        self.ready_timeout = ready_timeout
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._add_login_handler()

    def _add_login_handler(self) -> None:
        api = self.api

        @kopf.on.login(registry=self.registry, id="emulator-login")
        def login(**_: Any) -> kopf.ConnectionInfo:
            return emulator_login(api)

    def __enter__(self) -> KopfOperator:
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.ready_timeout):
            self.__exit__(None, None, None)
            raise RuntimeError(f"kopf did not become ready: {self.error!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise RuntimeError("kopf did not stop within 30 seconds")
        if self.error is not None and exc is None:
            raise RuntimeError("kopf failed") from self.error

    def _run(self) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    settings=self.settings,
                    memo=self.memo,
                    clusterwide=not self.namespaces,
                    namespaces=self.namespaces,
                    standalone=True,
                    stop_flag=self._stop,
                    ready_flag=self._ready,
                )
            )
        except BaseException as exc:  # reported by __exit__/__enter__ in the test's thread
            self.error = exc
            self._ready.set()
