"""The operator's API client against the emulated API server: finalizer updates."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException


def config_map(cluster):
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    cluster.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "acme"}}
    )
    return cluster.get("ConfigMap", "c")


def add(finalizer):
    def change(obj):
        current = obj["metadata"].get("finalizers") or []
        return None if finalizer in current else [*current, finalizer]

    return change


def test_finalizer_updates_never_drop_a_concurrent_writer_s(cluster):
    stale = config_map(cluster)
    # Another controller adds its finalizer after we read the object.
    cluster.kube.update_finalizers(cluster.get("ConfigMap", "c"), add("example.com/theirs"))
    cluster.kube.update_finalizers(stale, add("hearth.dev/unload-adapters"))
    stored = cluster.get("ConfigMap", "c")["metadata"]["finalizers"]
    assert stored == ["example.com/theirs", "hearth.dev/unload-adapters"]
    assert stale["metadata"]["finalizers"] == stored  # the caller's copy follows
    # Nothing to change: no write at all.
    version = stale["metadata"]["resourceVersion"]
    cluster.kube.update_finalizers(stale, add("hearth.dev/unload-adapters"))
    assert cluster.get("ConfigMap", "c")["metadata"]["resourceVersion"] == version
    cluster.kube.update_finalizers(stale, lambda obj: [])  # let the test clean up


def test_a_finalizer_cannot_be_added_to_an_object_being_deleted(cluster):
    obj = config_map(cluster)
    cluster.kube.update_finalizers(obj, add("example.com/theirs"))
    cluster.kube.delete("ConfigMap", "c", "acme")
    with pytest.raises(ApiException):
        cluster.kube.update_finalizers(obj, add("hearth.dev/unload-adapters"))
    assert cluster.get("ConfigMap", "c")["metadata"]["finalizers"] == ["example.com/theirs"]
    cluster.kube.update_finalizers(cluster.get("ConfigMap", "c"), lambda obj: [])
    assert cluster.get("ConfigMap", "c") is None
