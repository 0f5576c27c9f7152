"""Moved to :mod:`hearth.local.emulator.resources`."""

from hearth.local.emulator.resources import *  # noqa: F403
