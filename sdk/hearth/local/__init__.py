"""Hearth on one machine: an emulated Kubernetes API server and a process kubelet.

``hearthctl local up`` (``hearth.local.cli``) uses them to run a local Hearth the way kind
runs a local cluster; the project's tests use them to run the real operator, gateway and
model servers without a cluster. Installed with the ``local`` extra
(``pip install 'hearth[local]'``).

This is an emulation, not a cluster: the API server keeps objects in memory (optionally
saved to a file) and enforces the API's semantics, and pods are local processes with their
own loopback addresses. docs/local.md and docs/testing-harness.md say what is faithful.

    from hearth.local import KubeEmulatorServer, ProcessKubelet

    with KubeEmulatorServer(crds=["crds/"]) as api, ProcessKubelet(api):
        ...

The names are imported lazily, so that ``import hearth.local`` needs none of the extra's
dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hearth.local.background import BackgroundLoop
    from hearth.local.emulator import ApiError, KubeEmulatorServer
    from hearth.local.emulator.hearth_rules import hearth_validator
    from hearth.local.kubelet import ProcessKubelet

_EXPORTS = {
    "ApiError": "hearth.local.emulator",
    "BackgroundLoop": "hearth.local.background",
    "KubeEmulatorServer": "hearth.local.emulator",
    "ProcessKubelet": "hearth.local.kubelet",
    "hearth_validator": "hearth.local.emulator.hearth_rules",
}

__all__ = ["ApiError", "BackgroundLoop", "KubeEmulatorServer", "ProcessKubelet", "hearth_validator"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
