"""Moved to :mod:`hearth.local.emulator.gc`."""

from hearth.local.emulator.gc import *  # noqa: F403
