"""Moved to :mod:`hearth.local.emulator`; this package re-exports it for the tests.

Each submodule name (``tests.harness.emulator.<module>``) is the very module object of
``hearth.local.emulator.<module>``, so private names and monkeypatching behave as before.
The files next to this one only let static tools see the same names.
"""

import importlib
import sys

from hearth.local.emulator import *  # noqa: F403
from hearth.local.emulator import __all__ as __all__

_MODULES = (
    "api",
    "discovery",
    "errors",
    "gc",
    "hearth_rules",
    "kinds",
    "metadata",
    "patching",
    "protobuf",
    "quota",
    "resources",
    "schema",
    "selectors",
    "server",
    "store",
    "subresources",
)
for _name in _MODULES:
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"hearth.local.emulator.{_name}")
