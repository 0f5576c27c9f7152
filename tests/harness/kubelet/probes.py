"""Moved to :mod:`hearth.local.kubelet.probes`."""

from hearth.local.kubelet.probes import *  # noqa: F403
