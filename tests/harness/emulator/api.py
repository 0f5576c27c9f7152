"""Moved to :mod:`hearth.local.emulator.api`."""

from hearth.local.emulator.api import *  # noqa: F403
