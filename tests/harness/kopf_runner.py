"""Run the real kopf operator against the emulated API, in a background thread.

kopf's own `KopfRunner` runs the `kopf run` CLI for a module; operators under test
are usually a registry of handlers instead, so this runs :func:`kopf.operator` with
that registry on its own event loop (a :class:`BackgroundLoop`), logs in to the
emulator (a login handler is added to the registry), and stops it through kopf's
`stop_flag`.
"""

from __future__ import annotations

from collections.abc import Collection
from types import TracebackType
from typing import Any

import kopf

from tests.harness.background import BackgroundLoop
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
        self._runner = BackgroundLoop("kopf-operator", self._run, ready_timeout=ready_timeout)
        self._add_login_handler()

    def _add_login_handler(self) -> None:
        api = self.api

        @kopf.on.login(registry=self.registry, id="emulator-login")
        def login(**_: Any) -> kopf.ConnectionInfo:
            return emulator_login(api)

    @property
    def error(self) -> BaseException | None:
        """What kopf raised, if it failed."""
        return self._runner.error

    def __enter__(self) -> KopfOperator:
        self._runner.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._runner.stop()
        if self.error is not None and exc is None:
            raise RuntimeError("kopf failed") from self.error

    async def _run(self) -> None:
        await kopf.operator(
            registry=self.registry,
            settings=self.settings,
            memo=self.memo,
            clusterwide=not self.namespaces,
            namespaces=self.namespaces,
            standalone=True,
            stop_flag=self._runner.stop_requested,
            ready_flag=self._runner.ready,
        )
