"""The only module that talks to the Kubernetes API.

A small generic client over the official ``kubernetes`` package: objects are plain dicts,
kinds are looked up in one table, and the idempotent verbs the reconcilers need
(``ensure``, ``delete`` tolerating 404, status merge-patches) live here once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hearth.api import GROUP, VERSION

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: (Named outside the class, whose ``list`` method would shadow the builtin.)
Finalizers = list[str]


@dataclass(frozen=True)
class KindInfo:
    api_version: str
    plural: str
    namespaced: bool

    def base_path(self, namespace: str | None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.plural} are namespaced; no namespace given")
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


_HEARTH = f"{GROUP}/{VERSION}"
KINDS: dict[str, KindInfo] = {
    "Account": KindInfo(_HEARTH, "accounts", False),
    "User": KindInfo(_HEARTH, "users", True),
    "ApiKey": KindInfo(_HEARTH, "apikeys", True),
    "Model": KindInfo(_HEARTH, "models", True),
    "Deployment": KindInfo(_HEARTH, "deployments", True),
    "DeployedModel": KindInfo(_HEARTH, "deployedmodels", True),
    "Dataset": KindInfo(_HEARTH, "datasets", True),
    "FineTuningJob": KindInfo(_HEARTH, "finetuningjobs", True),
    "Namespace": KindInfo("v1", "namespaces", False),
    "Pod": KindInfo("v1", "pods", True),
    "Service": KindInfo("v1", "services", True),
    "ServiceAccount": KindInfo("v1", "serviceaccounts", True),
    "ConfigMap": KindInfo("v1", "configmaps", True),
    "Secret": KindInfo("v1", "secrets", True),
    "ResourceQuota": KindInfo("v1", "resourcequotas", True),
    "PersistentVolumeClaim": KindInfo("v1", "persistentvolumeclaims", True),
    "NetworkPolicy": KindInfo("networking.k8s.io/v1", "networkpolicies", True),
    "Role": KindInfo("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": KindInfo("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": KindInfo("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "Job": KindInfo("batch/v1", "jobs", True),
    "Event": KindInfo("v1", "events", True),
}

MERGE_PATCH = "application/merge-patch+json"


def is_status(error: ApiException, *codes: int) -> bool:
    return getattr(error, "status", None) in codes


class Kube:
    """Plain-dict access to the API server for the kinds in :data:`KINDS`."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api = api_client or client.ApiClient()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        _, url, headers, body, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(method, url, header_params=headers, body=body)
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            text = data.decode("utf-8", "replace") if data else ""
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        return json.loads(data) if data else {}

    def read_log(self, pod: str, namespace: str, *, tail_lines: int = 200) -> str | None:
        """The pod's (first container's) log, or None when it has none (yet)."""
        path = f"{KINDS['Pod'].base_path(namespace)}/{pod}/log"
        _, url, headers, _, _ = self.api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=[("tailLines", tail_lines)],
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api("GET", url, header_params=headers)
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            return None
        return data.decode("utf-8", "replace") if data else ""

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        info = KINDS[kind]
        try:
            result: Obj = self._call("GET", f"{info.base_path(namespace)}/{name}")
        except ApiException as error:
            if is_status(error, 404):
                return None
            raise
        return result

    def list(
        self, kind: str, namespace: str | None = None, *, labels: dict[str, str] | None = None
    ) -> list[Obj]:
        info = KINDS[kind]
        query: list[tuple[str, Any]] = []
        if labels:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items())))
        if info.namespaced and namespace is None:
            prefix = "/api/v1" if info.api_version == "v1" else f"/apis/{info.api_version}"
            path = f"{prefix}/{info.plural}"
        else:
            path = info.base_path(namespace)
        result = self._call("GET", path, query=query)
        items: list[Obj] = result.get("items") or []
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", info.api_version)
            item.setdefault("kind", kind)
        return items

    def create(self, obj: Obj) -> Obj:
        info = KINDS[obj["kind"]]
        namespace = obj["metadata"].get("namespace")
        result: Obj = self._call("POST", info.base_path(namespace), body=obj)
        return result

    def merge_patch(self, kind: str, name: str, namespace: str | None, patch: Obj) -> Obj:
        info = KINDS[kind]
        result: Obj = self._call(
            "PATCH", f"{info.base_path(namespace)}/{name}", body=patch, content_type=MERGE_PATCH
        )
        return result

    def patch_status(self, kind: str, name: str, namespace: str | None, status: Obj) -> Obj | None:
        """Merge-patch the status subresource; None when the object is gone."""
        info = KINDS[kind]
        try:
            result: Obj = self._call(
                "PATCH",
                f"{info.base_path(namespace)}/{name}/status",
                body={"status": status},
                content_type=MERGE_PATCH,
            )
        except ApiException as error:
            if is_status(error, 404):
                return None
            raise
        return result

    def patch_scale(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        replicas: int,
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Set replicas through the scale subresource (``autoscaling/v1 Scale``), the one
        place replicas are set; with ``resource_version`` a stale read is a 409."""
        info = KINDS[kind]
        body: Obj = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        result: Obj = self._call(
            "PATCH",
            f"{info.base_path(namespace)}/{name}/scale",
            body=body,
            content_type=MERGE_PATCH,
        )
        return result

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete; False when it was already gone."""
        info = KINDS[kind]
        try:
            self._call("DELETE", f"{info.base_path(namespace)}/{name}")
        except ApiException as error:
            if is_status(error, 404):
                return False
            raise
        return True

    def update_finalizers(
        self,
        obj: Obj,
        change: Callable[[Obj], Finalizers | None],
        *,
        attempts: int = 3,
    ) -> None:
        """Set ``obj``'s finalizers to ``change(obj)`` unless that is None.

        The write carries the resourceVersion read, so another controller's finalizer is
        never dropped by a stale list; on a conflict the object is read again and
        ``change`` asked again. ``obj`` is updated in place.
        """
        metadata = obj["metadata"]
        kind, name, namespace = obj["kind"], metadata["name"], metadata.get("namespace")
        for attempt in range(attempts):
            finalizers = change(obj)
            if finalizers is None:
                return
            patch = {
                "metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": metadata["resourceVersion"],
                }
            }
            try:
                updated = self.merge_patch(kind, name, namespace, patch)
            except ApiException as error:
                fresh = self.get(kind, name, namespace) if is_status(error, 409) else None
                if fresh is None or attempt + 1 == attempts:
                    raise
                obj["metadata"] = metadata = fresh["metadata"]
                continue
            metadata.update(
                finalizers=finalizers, resourceVersion=updated["metadata"]["resourceVersion"]
            )
            return

    def create_if_missing(self, obj: Obj) -> bool:
        """Create; False when an object of that name already exists (409)."""
        try:
            self.create(obj)
        except ApiException as error:
            if is_status(error, 409):
                return False
            raise
        return True

    def ensure(self, desired: Obj, *, fields: tuple[str, ...] = ("spec",)) -> Obj:
        """Create ``desired`` or bring the listed top-level fields, labels and owners in line.

        Fields are merge-patched, so keys another controller added (defaults the API
        server filled in, for one) are left alone.
        """
        metadata = desired["metadata"]
        name, namespace = metadata["name"], metadata.get("namespace")
        existing = self.get(desired["kind"], name, namespace)
        if existing is None:
            try:
                return self.create(desired)
            except ApiException as error:
                if not is_status(error, 409):
                    raise
                existing = self.get(desired["kind"], name, namespace)
                if existing is None:
                    raise
        patch: Obj = {}
        for key in fields:
            if key in desired and not _contains(existing.get(key), desired[key]):
                patch[key] = desired[key]
        meta_patch: Obj = {}
        labels = metadata.get("labels") or {}
        if not _contains(existing["metadata"].get("labels") or {}, labels):
            meta_patch["labels"] = labels
        owners = metadata.get("ownerReferences")
        if owners and existing["metadata"].get("ownerReferences") != owners:
            meta_patch["ownerReferences"] = owners
        if meta_patch:
            patch["metadata"] = meta_patch
        if not patch:
            return existing
        return self.merge_patch(desired["kind"], name, namespace, patch)


def _contains(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` already holds everything in ``wanted`` (extra keys allowed)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            _contains(actual.get(k), v) for k, v in wanted.items()
        )
    return bool(actual == wanted)
