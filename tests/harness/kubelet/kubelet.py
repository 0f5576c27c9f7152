"""Moved to :mod:`hearth.local.kubelet.kubelet`."""

from hearth.local.kubelet.kubelet import *  # noqa: F403
