"""Moved to :mod:`hearth.local.emulator.selectors`."""

from hearth.local.emulator.selectors import *  # noqa: F403
