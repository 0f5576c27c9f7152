"""Moved to :mod:`hearth.local.kubelet.jobs`."""

from hearth.local.kubelet.jobs import *  # noqa: F403
