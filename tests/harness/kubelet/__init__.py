"""The process kubelet: pods of the emulated cluster as local processes."""

from tests.harness.kubelet.kubelet import ProcessKubelet

__all__ = ["ProcessKubelet"]
