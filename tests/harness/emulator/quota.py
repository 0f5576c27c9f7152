"""Moved to :mod:`hearth.local.emulator.quota`."""

from hearth.local.emulator.quota import *  # noqa: F403
