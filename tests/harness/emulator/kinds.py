"""Moved to :mod:`hearth.local.emulator.kinds`."""

from hearth.local.emulator.kinds import *  # noqa: F403
