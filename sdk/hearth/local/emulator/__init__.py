"""An in-process emulation of the Kubernetes API server (see docs/testing-harness.md)."""

from hearth.local.emulator.api import KubeEmulator
from hearth.local.emulator.errors import ApiError
from hearth.local.emulator.server import EmulatorHandler, KubeEmulatorServer

__all__ = ["ApiError", "EmulatorHandler", "KubeEmulator", "KubeEmulatorServer"]
