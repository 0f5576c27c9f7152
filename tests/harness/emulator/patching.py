"""Moved to :mod:`hearth.local.emulator.patching`."""

from hearth.local.emulator.patching import *  # noqa: F403
