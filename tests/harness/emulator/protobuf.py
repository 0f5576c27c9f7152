"""Moved to :mod:`hearth.local.emulator.protobuf`."""

from hearth.local.emulator.protobuf import *  # noqa: F403
