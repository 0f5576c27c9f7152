"""Moved to :mod:`hearth.local.emulator.server`."""

from hearth.local.emulator.server import *  # noqa: F403
