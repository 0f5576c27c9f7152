"""Moved to :mod:`hearth.local.emulator.discovery`."""

from hearth.local.emulator.discovery import *  # noqa: F403
