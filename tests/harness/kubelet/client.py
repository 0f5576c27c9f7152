"""Moved to :mod:`hearth.local.kubelet.client`."""

from hearth.local.kubelet.client import *  # noqa: F403
