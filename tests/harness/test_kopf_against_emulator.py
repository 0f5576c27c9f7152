# The kubernetes client (v37) types request bodies as its pydantic models and every response
# field as Optional (custom-object calls return `object`); it takes plain dicts at runtime and
# these tests read back fields they have just set, so those typing checks are noise here.
# mypy: disable-error-code="arg-type, union-attr, index, no-untyped-call, operator"
# mypy: disable-error-code="assignment, misc, type-var, attr-defined, return-value"
"""The real kopf operator against the emulated API: discovery, watching, kopf's
annotation/status patches, finalizers, and kopf.adopt's owner references."""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes
import pytest

from tests.harness.emulator import KubeEmulatorServer
from tests.harness.kopf_runner import KopfOperator
from tests.harness.waiting import eventually

GROUP, VERSION, PLURAL = "example.dev", "v1", "widgets"

pytestmark = pytest.mark.timeout(60)


def make_registry(client: kubernetes.client.ApiClient) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    core = kubernetes.client.CoreV1Api(client)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="create_child")
    def create_child(
        body: kopf.Body, spec: kopf.Spec, name: str, namespace: str | None, **_: Any
    ) -> dict[str, str]:
        child: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-config"},
            "data": {"size": spec["size"]},
        }
        kopf.adopt(child, owner=body)
        core.create_namespaced_config_map(namespace, child)
        kopf.info(body, reason="ChildCreated", message=f"created {child['metadata']['name']}")
        return {"child": child["metadata"]["name"]}

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="cleanup")
    def cleanup(name: str, namespace: str | None, **_: Any) -> None:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"{name}-deleted"}})

    return registry


def test_kopf_adopts_child_and_cascade_deletes(
    api: KubeEmulatorServer, client: kubernetes.client.ApiClient
) -> None:
    core = kubernetes.client.CoreV1Api(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    with KopfOperator(api, make_registry(client)):
        owner = custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            {
                "apiVersion": "example.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": "M"},
            },
        )

        child = eventually(lambda: core.read_namespaced_config_map("w-config", "default"))
        refs = child.metadata.owner_references
        assert [(r.kind, r.name, r.uid, r.controller) for r in refs] == [
            ("Widget", "w", owner["metadata"]["uid"], True)
        ]
        assert child.data == {"size": "M"}

        # kopf recorded its handler result in the status subresource and its finalizer.
        def handled() -> dict[str, Any] | None:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
            done = obj.get("status", {}).get("create_child") == {"child": "w-config"}
            return obj if done else None

        obj = eventually(handled)
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        assert obj["metadata"]["generation"] == 1  # kopf's status/annotation writes
        # kopf posted the handler's event as a core/v1 Event about the object.
        event = eventually(
            lambda: next(
                e for e in core.list_namespaced_event("default").items if e.reason == "ChildCreated"
            )
        )
        assert event.involved_object.uid == owner["metadata"]["uid"]
        assert event.message == "created w-config"

        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
        # kopf's delete handler runs, then it releases its finalizer; the GC takes the child.
        eventually(lambda: core.read_namespaced_config_map("w-deleted", "default"))
        eventually(lambda: api.get("example.dev/v1", "Widget", "w", "default") is None)
        eventually(lambda: api.get("v1", "ConfigMap", "w-config", "default") is None)


def test_kopf_discovers_a_crd_created_while_running(
    api: KubeEmulatorServer, client: kubernetes.client.ApiClient
) -> None:
    registry = kopf.OperatorRegistry()
    seen: list[str] = []

    @kopf.on.create("later.dev", "v1", "things", registry=registry)
    def on_thing(name: str, **_: Any) -> None:
        seen.append(name)

    with KopfOperator(api, registry):
        api.create(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "things.later.dev"},
                "spec": {
                    "group": "later.dev",
                    "scope": "Namespaced",
                    "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    ],
                },
            }
        )
        api.create(
            {
                "apiVersion": "later.dev/v1",
                "kind": "Thing",
                "metadata": {"name": "t1", "namespace": "default"},
            }
        )
        eventually(lambda: seen == ["t1"], timeout=20)


def test_kopf_namespace_patterns_follow_new_namespaces(api: KubeEmulatorServer) -> None:
    registry = kopf.OperatorRegistry()
    seen: list[tuple[str | None, str]] = []

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="seen")
    def on_widget(namespace: str | None, name: str, **_: Any) -> None:
        seen.append((namespace, name))

    def widget(namespace: str, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"size": "S"},
        }

    with KopfOperator(api, registry, namespaces=["team-*"]):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        api.create(widget("default", "ignored"))
        api.create(widget("team-a", "handled"))
        eventually(lambda: seen == [("team-a", "handled")], timeout=20)


def test_kubeconfig_works_for_kopf_logins(
    api: KubeEmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    import kubernetes.config.kube_config

    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig_path))
    # The client reads $KUBECONFIG once, at import; point its default at this server too.
    monkeypatch.setattr(
        kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(api.kubeconfig_path)
    )
    settings = kopf.OperatorSettings()
    logger = logging.getLogger("test")
    previous = kubernetes.client.Configuration.get_default_copy()
    try:
        via_client = kopf.login_via_client(logger=logger, settings=settings)
    finally:  # the client login changed the process-wide default configuration
        kubernetes.client.Configuration.set_default(previous)
    via_kubeconfig = kopf.login_with_kubeconfig(logger=logger, settings=settings)
    assert via_client is not None and via_client.server == api.url
    assert via_kubeconfig is not None and via_kubeconfig.server == api.url
    assert via_kubeconfig.token == "emulator-token"
