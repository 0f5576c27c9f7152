"""Moved to :mod:`hearth.local.kubelet.env`."""

from hearth.local.kubelet.env import *  # noqa: F403
