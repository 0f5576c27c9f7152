"""An in-process emulation of the Kubernetes API server (see docs/testing-harness.md)."""

from tests.harness.emulator.api import KubeEmulator
from tests.harness.emulator.errors import ApiError
from tests.harness.emulator.server import EmulatorHandler, KubeEmulatorServer

__all__ = ["ApiError", "EmulatorHandler", "KubeEmulator", "KubeEmulatorServer"]
