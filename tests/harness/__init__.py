"""Test harness: an emulated Kubernetes API server and a process kubelet.

This is an emulation of the API server and the kubelet for tests on machines that
cannot run a cluster; see docs/testing-harness.md for what is faithful and what is not.
"""
