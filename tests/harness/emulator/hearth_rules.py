"""Moved to :mod:`hearth.local.emulator.hearth_rules`."""

from hearth.local.emulator.hearth_rules import *  # noqa: F403
