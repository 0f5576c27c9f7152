"""The process kubelet: pods of the emulated cluster as local processes."""

from hearth.local.kubelet.kubelet import ProcessKubelet

__all__ = ["ProcessKubelet"]
