"""Test harness: an emulated Kubernetes API server and a process kubelet.

This is an emulation of the API server and the kubelet for machines that cannot run
a cluster, not a cluster; docs/testing-harness.md says what is faithful and what is not.

    from tests.harness import KubeEmulatorServer, ProcessKubelet, KopfOperator, eventually
"""

from tests.harness.emulator import ApiError, KubeEmulatorServer
from tests.harness.kopf_runner import KopfOperator
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import ConditionTimeout, eventually

__all__ = ['ApiError', 'ConditionTimeout', 'KopfOperator', 'KubeEmulatorServer',
           'ProcessKubelet', 'eventually']
