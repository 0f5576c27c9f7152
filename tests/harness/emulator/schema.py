"""Moved to :mod:`hearth.local.emulator.schema`."""

from hearth.local.emulator.schema import *  # noqa: F403
