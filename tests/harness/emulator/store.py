"""Moved to :mod:`hearth.local.emulator.store`."""

from hearth.local.emulator.store import *  # noqa: F403
