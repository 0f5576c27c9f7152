# The kubernetes client (v37) types request bodies as its pydantic models and every response
# field as Optional (custom-object calls return `object`); it takes plain dicts at runtime and
# these tests read back fields they have just set, so those typing checks are noise here.
# mypy: disable-error-code="arg-type, union-attr, index, no-untyped-call, operator"
# mypy: disable-error-code="assignment, misc, type-var, attr-defined, return-value"
"""The emulated API server, driven by the official `kubernetes` client over HTTP."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException, CoreV1Api, CustomObjectsApi

from tests.harness.emulator import KubeEmulatorServer
from tests.harness.waiting import eventually

pytestmark = pytest.mark.timeout(30)

GROUP, VERSION, PLURAL = "example.dev", "v1", "widgets"


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": "S", **spec},
    }


def error_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def create_widget(custom: CustomObjectsApi, name: str, **spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget(name, **spec)
    )
    return result


def test_server_side_metadata_on_create(core: CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    second = core.create_namespaced_config_map("default", {"metadata": {"generateName": "b-"}})
    assert first.metadata.uid and second.metadata.uid and first.metadata.uid != second.metadata.uid
    assert first.metadata.creation_timestamp is not None
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.metadata.generation == 1
    assert second.metadata.name.startswith("b-") and len(second.metadata.name) == 7
    read = core.read_namespaced_config_map("a", "default")
    assert read.metadata.uid == first.metadata.uid


def test_kubernetes_style_errors(core: CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert exc.value.status == 409 and error_of(exc.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("missing", "default")
    assert exc.value.status == 404 and error_of(exc.value)["reason"] == "NotFound"
    assert error_of(exc.value)["message"] == 'configmaps "missing" not found'
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "a"}})
    assert error_of(exc.value)["message"] == 'namespaces "nowhere" not found'
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Not_Valid"}})
    assert exc.value.status == 422 and error_of(exc.value)["reason"] == "Invalid"


def test_stale_resource_version_conflicts(core: CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {}})
    stale = cm.metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    body = {"metadata": {"name": "a", "resourceVersion": stale}, "data": {"x": "2"}}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("a", "default", body)
    assert exc.value.status == 409 and error_of(exc.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as exc:  # a resourceVersion in a patch is a precondition
        core.patch_namespaced_config_map("a", "default", body)
    assert exc.value.status == 409
    fresh = core.read_namespaced_config_map("a", "default")
    body["metadata"]["resourceVersion"] = fresh.metadata.resource_version
    assert core.replace_namespaced_config_map("a", "default", body).data == {"x": "2"}


def test_noop_write_keeps_resource_version(core: CoreV1Api) -> None:
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a"}, "data": {"x": "1"}}
    )
    same = core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    assert same.metadata.resource_version == cm.metadata.resource_version


def test_generation_moves_only_with_spec(custom: CustomObjectsApi) -> None:
    created = create_widget(custom, "w1")
    assert created["metadata"]["generation"] == 1
    assert created["spec"] == {"size": "S", "replicas": 1, "color": "blue"}  # defaulted
    labelled = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w1", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "w1", {"status": {"replicas": 3}}
    )
    assert status["metadata"]["generation"] == 1 and status["status"] == {"replicas": 3}
    changed = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w1", {"spec": {"size": "M"}}
    )
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(status["metadata"]["resourceVersion"])


def test_status_subresource_isolation(custom: CustomObjectsApi) -> None:
    create_widget(custom, "w1")
    # Main-resource writes ignore status ...
    main = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w1", {"status": {"replicas": 5}, "spec": {"size": "L"}}
    )
    assert "status" not in main and main["spec"]["size"] == "L"
    # ... and status writes ignore everything else.
    status = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w1",
        {"status": {"replicas": 2}, "spec": {"size": "S"}, "metadata": {"labels": {"x": "y"}}},
    )
    assert status["status"] == {"replicas": 2} and status["spec"]["size"] == "L"
    assert "labels" not in status["metadata"]
    # Status given at creation is dropped, as the real server does with a status subresource.
    body = widget("w2")
    body["status"] = {"replicas": 9}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert "status" not in created


def test_schema_validation_and_pruning(custom: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as exc:
        create_widget(custom, "bad", size="XXL")
    assert exc.value.status == 422
    assert error_of(exc.value)["details"]["causes"][0]["field"] == "spec.size"
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, {**widget("bad"), "spec": {}}
        )
    assert exc.value.status == 422 and "spec.size: Required value" in error_of(exc.value)["message"]
    pruned = create_widget(custom, "w", unknownField=1)
    assert "unknownField" not in pruned["spec"]


def test_patch_formats(core: CoreV1Api, custom: CustomObjectsApi) -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"app": "x"}},
        "spec": {
            "containers": [{"name": "main", "image": "a", "env": [{"name": "A", "value": "1"}]}]
        },
    }
    core.create_namespaced_pod("default", pod)
    # The official client sends a dict body as a strategic merge patch: lists merge by key.
    patched = core.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "main", "image": "b"}]}}
    )
    assert patched.spec.containers[0].image == "b"
    assert patched.spec.containers[0].env[0].name == "A"
    # A list body is a JSON patch; a failing `test` is a 422 like on a real server.
    core.patch_namespaced_pod(
        "p", "default", [{"op": "add", "path": "/metadata/labels/tier", "value": "web"}]
    )
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_pod(
            "p",
            "default",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                {"op": "add", "path": "/metadata/labels/other", "value": "x"},
            ],
        )
    assert exc.value.status == 422
    assert core.read_namespaced_pod("p", "default").metadata.labels == {"app": "x", "tier": "web"}
    # Pod specs are immutable except images.
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_pod("p", "default", {"spec": {"restartPolicy": "Never"}})
    assert exc.value.status == 422
    # Custom resources refuse strategic merge patches (415), as the real server does.
    create_widget(custom, "w")
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "w",
            {"spec": {"size": "M"}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415


def test_finalizers_and_deletion_timestamp(custom: CustomObjectsApi) -> None:
    body = widget("w")
    body["metadata"]["finalizers"] = ["example.dev/cleanup"]
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    deleted = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
    assert deleted["metadata"]["deletionTimestamp"]
    assert deleted["metadata"]["generation"] == 2
    still = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
    assert still["metadata"]["finalizers"] == ["example.dev/cleanup"]
    with pytest.raises(ApiException) as exc:  # no new finalizers while terminating
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "w",
            {"metadata": {"finalizers": ["example.dev/cleanup", "other"]}},
        )
    assert exc.value.status == 422
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
    assert exc.value.status == 404


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_cascade_deletion_background(core: CoreV1Api, custom: CustomObjectsApi) -> None:
    owner = create_widget(custom, "w")
    other = create_widget(custom, "other")
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "child", "ownerReferences": [owner_ref(owner)]}}
    )
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "shared",
                "ownerReferences": [owner_ref(owner), {**owner_ref(other), "controller": False}],
            }
        },
    )
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "grandchild",
                "finalizers": ["example.dev/keep"],
                "ownerReferences": [
                    {
                        **owner_ref(owner),
                        "kind": "ConfigMap",
                        "apiVersion": "v1",
                        "name": "child",
                        "uid": core.read_namespaced_config_map("child", "default").metadata.uid,
                    }
                ],
            }
        },
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")

    def names() -> set[str]:
        return {cm.metadata.name for cm in core.list_namespaced_config_map("default").items}

    eventually(lambda: "child" not in names())
    shared = core.read_namespaced_config_map("shared", "default")
    assert [ref.name for ref in shared.metadata.owner_references] == ["other"]
    # The grandchild is being deleted but waits for its own finalizer.
    grandchild = eventually(
        lambda: core.read_namespaced_config_map("grandchild", "default").metadata.deletion_timestamp
    )
    assert grandchild is not None


def test_cascade_across_scopes(
    api: KubeEmulatorServer, core: CoreV1Api, custom: CustomObjectsApi
) -> None:
    gadget = custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "gadgets",
        {"apiVersion": "example.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}},
    )
    core.create_namespace({"metadata": {"name": "team", "ownerReferences": [owner_ref(gadget)]}})
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm", "ownerReferences": [owner_ref(gadget)]}}
    )
    core.create_namespaced_secret("team", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert core.read_namespaced_secret("s", "team").data == {"k": "dg=="}
    custom.delete_cluster_custom_object(GROUP, VERSION, "gadgets", "g")
    eventually(lambda: api.get("v1", "ConfigMap", "cm", "default") is None)
    # The namespace terminates: its content is deleted, then the namespace itself.
    eventually(lambda: api.get("v1", "Namespace", "team") is None)
    assert api.get("v1", "Secret", "s", "team") is None


def test_foreground_and_orphan_propagation(api: KubeEmulatorServer, core: CoreV1Api) -> None:
    parent = api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}})
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c", "ownerReferences": [owner_ref(parent)]}}
    )
    core.delete_namespaced_config_map("p", "default", propagation_policy="Foreground")
    eventually(lambda: api.get("v1", "ConfigMap", "p", "default") is None)
    assert api.get("v1", "ConfigMap", "c", "default") is None

    parent = api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}})
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c", "ownerReferences": [owner_ref(parent)]}}
    )
    core.delete_namespaced_config_map("p", "default", propagation_policy="Orphan")
    orphan = core.read_namespaced_config_map("c", "default")
    assert orphan.metadata.owner_references is None


def test_label_and_field_selectors(core: CoreV1Api) -> None:
    labels = {
        "a": {"app": "web", "tier": "front"},
        "b": {"app": "web"},
        "c": {"app": "db", "tier": "back"},
        "d": {},
    }
    for name, lbls in labels.items():
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": lbls}})

    def select(selector: str) -> list[str]:
        return sorted(
            cm.metadata.name
            for cm in core.list_namespaced_config_map("default", label_selector=selector).items
        )

    assert select("app=web") == ["a", "b"]
    assert select("app==web,tier=front") == ["a"]
    assert select("app!=web") == ["c", "d"]
    assert select("app in (web, db)") == ["a", "b", "c"]
    assert select("app notin (web)") == ["c", "d"]
    assert select("tier") == ["a", "c"]
    assert select("!tier") == ["b", "d"]
    by_name = core.list_namespaced_config_map("default", field_selector="metadata.name=c")
    assert [cm.metadata.name for cm in by_name.items] == ["c"]
    all_ns = core.list_config_map_for_all_namespaces(
        field_selector="metadata.namespace=default,metadata.name!=a"
    )
    assert sorted(cm.metadata.name for cm in all_ns.items) == ["b", "c", "d"]


def test_watch_resumes_from_resource_version(core: CoreV1Api) -> None:
    listed = core.list_namespaced_config_map("default")
    core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"w": "1"}}})
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"w": "2"}}})
    core.delete_namespaced_config_map("a", "default")
    watch = kubernetes.watch.Watch()
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    # With a selector, objects leaving the selection are reported as DELETED.
    selected = [
        e["type"]
        for e in watch.stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="w=1",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert selected == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_streams_live_events(api: KubeEmulatorServer, core: CoreV1Api) -> None:
    import threading

    seen: list[tuple[str, str]] = []
    watch = kubernetes.watch.Watch()

    def consume() -> None:
        for event in watch.stream(core.list_namespaced_config_map, "default", timeout_seconds=10):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                watch.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    eventually(lambda: api.emulator._watches)
    core.create_namespaced_config_map("default", {"metadata": {"name": "live"}})
    core.delete_namespaced_config_map("live", "default")
    thread.join(timeout=15)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_too_old_resource_version_is_gone() -> None:
    with (
        KubeEmulatorServer(history_size=5) as api,
        kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig_path)) as client,
    ):
        core = CoreV1Api(client)
        for i in range(10):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        watch = kubernetes.watch.Watch()
        with pytest.raises(ApiException) as exc:
            list(
                watch.stream(
                    core.list_namespaced_config_map,
                    "default",
                    resource_version="1",
                    timeout_seconds=1,
                )
            )
        assert exc.value.status == 410


def test_scale_subresource(custom: CustomObjectsApi) -> None:
    create_widget(custom, "w", replicas=2)
    scale = custom.get_namespaced_custom_object_scale(GROUP, VERSION, "default", PLURAL, "w")
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 2}
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "w", {"status": {"replicas": 1, "selector": "a=b"}}
    )
    scaled = custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, "default", PLURAL, "w", {"spec": {"replicas": 4}}
    )
    assert scaled["spec"] == {"replicas": 4}
    assert scaled["status"] == {"replicas": 1, "selector": "a=b"}
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
    assert obj["spec"]["replicas"] == 4 and obj["metadata"]["generation"] == 2
    scaled["spec"]["replicas"] = 0
    assert custom.replace_namespaced_custom_object_scale(
        GROUP, VERSION, "default", PLURAL, "w", scaled
    )["spec"] == {"replicas": 0}
    with pytest.raises(ApiException) as exc:  # stale resourceVersion on the Scale
        custom.replace_namespaced_custom_object_scale(
            GROUP, VERSION, "default", PLURAL, "w", scaled
        )
    assert exc.value.status == 409


def test_discovery_serves_crds(
    client: kubernetes.client.ApiClient, api: KubeEmulatorServer
) -> None:
    apis = kubernetes.client.ApisApi(client).get_api_versions()
    groups = {g.name: g.preferred_version.version for g in apis.groups}
    assert groups["example.dev"] == "v1" and "rbac.authorization.k8s.io" in groups
    resources = kubernetes.client.CustomObjectsApi(client).get_api_resources("example.dev", "v1")
    by_name = {r.name: r for r in resources.resources}
    assert by_name["widgets"].namespaced and by_name["widgets"].short_names == ["wd"]
    assert {"widgets/status", "widgets/scale", "gadgets/status"} <= set(by_name)
    assert not by_name["gadgets"].namespaced
    # Deleting a CRD removes its objects and stops serving it.
    kubernetes.client.ApiextensionsV1Api(client).delete_custom_resource_definition(
        "gadgets.example.dev"
    )
    eventually(
        lambda: (
            api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.example.dev")
            is None
        )
    )
    names = {
        r.name
        for r in kubernetes.client.CustomObjectsApi(client)
        .get_api_resources("example.dev", "v1")
        .resources
    }
    assert "gadgets" not in names


def test_pod_graceful_deletion_waits_for_kubelet(api: KubeEmulatorServer, core: CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    assert core.read_namespaced_pod("p", "default").status.phase == "Pending"
    # The real server answers a binding with a Status, which the typed client cannot parse
    # into a V1Binding (a known client issue), hence the raw response.
    core.create_namespaced_pod_binding(
        "p",
        "default",
        {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-1"}},
        _preload_content=False,
    ).release_conn()
    assert core.read_namespaced_pod("p", "default").spec.node_name == "node-1"
    core.delete_namespaced_pod("p", "default")
    pending = core.read_namespaced_pod("p", "default")
    assert pending.metadata.deletion_timestamp is not None
    assert pending.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)  # what a kubelet does
    assert api.get("v1", "Pod", "p", "default") is None


def test_fault_injection_and_request_log_through_kmock() -> None:
    import kmock

    with (
        KubeEmulatorServer(record_requests=True) as api,
        kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig_path)) as client,
    ):
        core = CoreV1Api(client)
        api.kmock["create", kmock.resource("v1/configmaps")] << 503
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        assert exc.value.status == 503
        core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
        created = list(api.kmock["create"])
        assert [request.resource.plural for request in created] == ["configmaps", "secrets"]


def test_resource_quota_admission_and_usage(core: CoreV1Api, custom: CustomObjectsApi) -> None:
    core.create_namespaced_resource_quota(
        "default",
        {
            "metadata": {"name": "q"},
            "spec": {
                "hard": {
                    "count/widgets.example.dev": "1",
                    "requests.nvidia.com/gpu": "2",
                    "pods": "5",
                }
            },
        },
    )
    create_widget(custom, "w1")
    with pytest.raises(ApiException) as exc:
        create_widget(custom, "w2")
    assert exc.value.status == 403
    assert (
        "exceeded quota: q, requested: count/widgets.example.dev=1"
        in error_of(exc.value)["message"]
    )

    def gpu_pod(name: str, gpus: int) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "x",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    }
                ]
            },
        }

    core.create_namespaced_pod("default", gpu_pod("p1", 1))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", gpu_pod("p2", 2))
    assert exc.value.status == 403 and "limited: requests.nvidia.com/gpu=2" in exc.value.body

    def used() -> dict[str, str] | None:
        quota = core.read_namespaced_resource_quota("q", "default")
        return quota.status.used if quota.status and quota.status.used else None

    assert eventually(
        lambda: (
            used()
            == {"count/widgets.example.dev": "1", "requests.nvidia.com/gpu": "1", "pods": "1"}
        )
    )


def test_pagination_and_collection_delete(core: CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map(
            "default",
            {"metadata": {"name": f"c{i}", "labels": {"batch": "even" if i % 2 == 0 else "odd"}}},
        )
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["c0", "c1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["c2", "c3", "c4"]
    core.delete_collection_namespaced_config_map("default", label_selector="batch=even")
    remaining = core.list_namespaced_config_map("default").items
    assert [c.metadata.name for c in remaining] == ["c1", "c3"]


def test_terminating_namespace_refuses_new_content(
    api: KubeEmulatorServer, core: CoreV1Api
) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map(
        "doomed", {"metadata": {"name": "held", "finalizers": ["example.dev/hold"]}}
    )
    core.delete_namespace("doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "new"}})
    assert exc.value.status == 403
    eventually(
        lambda: core.read_namespaced_config_map("held", "doomed").metadata.deletion_timestamp
    )
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    eventually(lambda: api.get("v1", "Namespace", "doomed") is None)


def test_metadata_validation(core: CoreV1Api) -> None:
    too_long = "a" * 64  # e.g. a full sha256 hex digest used as a label value
    cases: list[dict[str, Any]] = [
        {"name": "a", "labels": {"spec-hash": too_long}},
        {"name": "a", "labels": {"bad key!": "x"}},
        {"name": "a", "annotations": {"/x": "y"}},
        {
            "name": "a",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": ""}],
        },
        {
            "name": "a",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": n, "controller": True}
                for n in ("x", "y")
            ],
        },
    ]
    for meta in cases:
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_config_map("default", {"metadata": meta})
        assert exc.value.status == 422, meta
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service(
            "default", {"metadata": {"name": "1-svc"}, "spec": {"ports": [{"port": 80}]}}
        )
    assert exc.value.status == 422
    ok = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "ok", "labels": {"example.dev/spec-hash": too_long[:63]}}}
    )
    assert ok.metadata.labels == {"example.dev/spec-hash": too_long[:63]}


def test_cross_namespace_owner_is_absent(api: KubeEmulatorServer, core: CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    owner = api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "owner", "namespace": "other"},
        }
    )
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "stray", "ownerReferences": [owner_ref(owner)]}}
    )
    # The collector resolves a namespaced owner only in the dependent's namespace.
    eventually(lambda: api.get("v1", "ConfigMap", "stray", "default") is None)


def test_pod_and_service_validation(core: CoreV1Api) -> None:
    def container(**fields: Any) -> dict[str, Any]:
        return {"name": "main", "image": "x", **fields}

    invalid_specs = [
        {"containers": [{"name": "main"}]},  # no image
        {"containers": [container(), container()]},  # duplicate names
        {"containers": [container(name="Main")]},
        {"containers": [container(env=[{"name": "1X", "value": "y"}])]},
        {"containers": [container(resources={"requests": {"nvidia.com/gpu": "1"}})]},
        {
            "containers": [
                container(
                    resources={
                        "requests": {"nvidia.com/gpu": "1"},
                        "limits": {"nvidia.com/gpu": "2"},
                    }
                )
            ]
        },
        {"containers": [container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})]},
    ]
    for i, spec in enumerate(invalid_specs):
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_pod("default", {"metadata": {"name": f"p{i}"}, "spec": spec})
        assert exc.value.status == 422, spec
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "gpu"},
            "spec": {"containers": [container(resources={"limits": {"nvidia.com/gpu": "1"}})]},
        },
    )
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service(
            "default",
            {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}},
        )
    assert exc.value.status == 422 and "spec.ports[0].name" in exc.value.body


def test_concurrent_read_modify_write_loses_nothing(core: CoreV1Api) -> None:
    import threading

    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "counter"}, "data": {"n": "0"}}
    )
    conflicts: list[int] = []

    def increment(times: int) -> None:
        for _ in range(times):
            while True:
                current = core.read_namespaced_config_map("counter", "default")
                current.data["n"] = str(int(current.data["n"]) + 1)
                try:
                    core.replace_namespaced_config_map("counter", "default", current)
                    break
                except ApiException as exc:
                    assert exc.status == 409
                    conflicts.append(1)

    threads = [threading.Thread(target=increment, args=(10,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert core.read_namespaced_config_map("counter", "default").data["n"] == "40"


def test_watch_sees_every_change_in_order(api: KubeEmulatorServer, core: CoreV1Api) -> None:
    import threading

    start = core.list_namespaced_config_map("default").metadata.resource_version
    names = [f"cm-{i}" for i in range(30)]

    def create_all() -> None:
        for name in names:
            api.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"},
                }
            )

    writer = threading.Thread(target=create_all)
    writer.start()
    seen: list[tuple[str, int]] = []
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=10
    ):
        obj = event["object"]
        seen.append((obj.metadata.name, int(obj.metadata.resource_version)))
        if len(seen) == len(names):
            watch.stop()
    writer.join(timeout=10)
    assert [name for name, _ in seen] == names
    versions = [rv for _, rv in seen]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_dump_shows_every_object(api: KubeEmulatorServer) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "visible", "namespace": "default"},
        }
    )
    assert "name: visible" in api.dump() and "kind: CustomResourceDefinition" in api.dump()


def test_apply_keeps_what_controllers_added(
    api: KubeEmulatorServer, custom: CustomObjectsApi
) -> None:
    manifest = widget("w", color="red")
    manifest["metadata"]["namespace"] = "default"
    api.apply(manifest)
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w",
        {
            "metadata": {
                "finalizers": ["example.dev/keep"],
                "annotations": {"controller/state": "x"},
            }
        },
    )
    manifest["spec"]["color"] = "green"
    applied = api.apply(manifest)
    assert applied["spec"]["color"] == "green" and applied["metadata"]["generation"] == 2
    assert applied["metadata"]["finalizers"] == ["example.dev/keep"]
    assert applied["metadata"]["annotations"] == {"controller/state": "x"}
