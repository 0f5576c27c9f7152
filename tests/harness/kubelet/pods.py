"""Moved to :mod:`hearth.local.kubelet.pods`."""

from hearth.local.kubelet.pods import *  # noqa: F403
