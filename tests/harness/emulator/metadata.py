"""Moved to :mod:`hearth.local.emulator.metadata`."""

from hearth.local.emulator.metadata import *  # noqa: F403
