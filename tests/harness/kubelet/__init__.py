"""Moved to :mod:`hearth.local.kubelet`; this package re-exports it for the tests.

Each submodule name (``tests.harness.kubelet.<module>``) is the very module object of
``hearth.local.kubelet.<module>``, so private names and monkeypatching behave as before.
The files next to this one only let static tools see the same names.
"""

import importlib
import sys

from hearth.local.kubelet import *  # noqa: F403
from hearth.local.kubelet import __all__ as __all__

_MODULES = (
    "client",
    "env",
    "jobs",
    "kubelet",
    "pods",
    "probes",
    "volumes",
)
for _name in _MODULES:
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"hearth.local.kubelet.{_name}")
