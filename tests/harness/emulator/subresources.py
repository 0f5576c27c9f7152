"""Moved to :mod:`hearth.local.emulator.subresources`."""

from hearth.local.emulator.subresources import *  # noqa: F403
