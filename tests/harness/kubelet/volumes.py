"""Moved to :mod:`hearth.local.kubelet.volumes`."""

from hearth.local.kubelet.volumes import *  # noqa: F403
