"""Test harness: an emulated Kubernetes API server and a process kubelet.

This is an emulation of the API server and the kubelet for machines that cannot run
a cluster, not a cluster; docs/testing-harness.md says what is faithful and what is not.

    from tests.harness import KubeEmulatorServer, ProcessKubelet, KopfOperator, eventually

The names are imported lazily, so that using the emulator alone does not import kopf.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.harness.emulator import ApiError, KubeEmulatorServer
    from tests.harness.kopf_runner import KopfOperator
    from tests.harness.kubelet import ProcessKubelet
    from tests.harness.waiting import ConditionTimeout, eventually

_EXPORTS = {
    "ApiError": "tests.harness.emulator",
    "KubeEmulatorServer": "tests.harness.emulator",
    "KopfOperator": "tests.harness.kopf_runner",
    "ProcessKubelet": "tests.harness.kubelet",
    "ConditionTimeout": "tests.harness.waiting",
    "eventually": "tests.harness.waiting",
}

__all__ = [
    "ApiError",
    "ConditionTimeout",
    "KopfOperator",
    "KubeEmulatorServer",
    "ProcessKubelet",
    "eventually",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
