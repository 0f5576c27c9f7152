"""Moved to :mod:`hearth.local.emulator.errors`."""

from hearth.local.emulator.errors import *  # noqa: F403
