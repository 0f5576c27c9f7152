"""What the emulated API server serves: built-in kinds and kinds defined by CRDs.

A :class:`ResourceType` carries what discovery publishes (group, version, plural,
kind, scope, short names, verbs, subresources) plus what the storage layer needs
to know (does this kind have a status subresource, a scale subresource and where
its replicas live, the OpenAPI schema of a CRD version).

The :class:`Registry` is rebuilt from the stored CustomResourceDefinition objects
whenever one changes, so a CRD created through the API is served (and discovered
by kopf) immediately, as on a real server once the CRD is Established.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """The `.spec.versions[].subresources.scale` of a CRD (JSON paths like `.spec.replicas`)."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    scale: ScaleSpec | None = None
    extra_subresources: tuple[str, ...] = ()  # e.g. pods/binding, pods/log
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a CRD version
    custom: bool = False  # defined by a CRD (affects patch types, delete responses)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_plural(self) -> tuple[str, str]:
        """The storage identity: all served versions of one kind share their objects."""
        return (self.group, self.plural)

    @property
    def subresources(self) -> tuple[str, ...]:
        names: list[str] = []
        if self.has_status:
            names.append("status")
        if self.scale is not None:
            names.append("scale")
        names.extend(self.extra_subresources)
        return tuple(names)

    def describe(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _core(
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    status: bool = False,
    extra: tuple[str, ...] = (),
    group: str = "",
    version: str = "v1",
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short,
        has_status=status,
        extra_subresources=extra,
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", namespaced=False, short=("ns",), status=True),
    _core("pods", "Pod", short=("po",), status=True, extra=("binding", "log")),
    _core("services", "Service", short=("svc",), status=True),
    _core("configmaps", "ConfigMap", short=("cm",)),
    _core("secrets", "Secret"),
    _core("events", "Event", short=("ev",)),
    _core("serviceaccounts", "ServiceAccount", short=("sa",)),
    _core("resourcequotas", "ResourceQuota", short=("quota",), status=True),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), status=True),
    _core("nodes", "Node", namespaced=False, short=("no",), status=True),
    _core("events", "Event", short=("ev",), group="events.k8s.io"),
    _core("jobs", "Job", status=True, group="batch"),
    # Stored and served (what `helm install` creates), with no controller behind them.
    _core("deployments", "Deployment", short=("deploy",), status=True, group="apps"),
    _core(
        "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True, group="policy"
    ),
    _core("ingresses", "Ingress", short=("ing",), status=True, group="networking.k8s.io"),
    _core("networkpolicies", "NetworkPolicy", short=("netpol",), group="networking.k8s.io"),
    _core("roles", "Role", group="rbac.authorization.k8s.io"),
    _core("clusterroles", "ClusterRole", namespaced=False, group="rbac.authorization.k8s.io"),
    _core("rolebindings", "RoleBinding", group="rbac.authorization.k8s.io"),
    _core(
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
        group="rbac.authorization.k8s.io",
    ),
    _core(
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        status=True,
        group="apiextensions.k8s.io",
    ),
)

CRD_GROUP_PLURAL = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_GROUP_PLURAL = ("", "namespaces")
POD_GROUP_PLURAL = ("", "pods")


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """All served versions of a CRD as resource types (what the real server would serve)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    group = spec["group"]
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    result: list[ResourceType] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale_raw = subresources.get("scale")
        scale = (
            ScaleSpec(
                spec_replicas_path=scale_raw["specReplicasPath"],
                status_replicas_path=scale_raw["statusReplicasPath"],
                label_selector_path=scale_raw.get("labelSelectorPath"),
            )
            if scale_raw is not None
            else None
        )
        result.append(
            ResourceType(
                group=group,
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=namespaced,
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames", [])),
                categories=tuple(names.get("categories", [])),
                has_status="status" in subresources,
                scale=scale,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
            )
        )
    return result


def storage_version(crd: dict[str, Any]) -> str | None:
    for version in crd.get("spec", {}).get("versions", []):
        if version.get("storage"):
            return str(version["name"])
    return None


class Registry:
    """The served resource types, indexed for URL routing and discovery."""

    def __init__(self, builtins: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._builtins = list(builtins)
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self.rebuild([])

    def rebuild(self, crds: Iterable[dict[str, Any]]) -> None:
        types = {(t.group, t.version, t.plural): t for t in self._builtins}
        for crd in crds:
            for rtype in types_from_crd(crd):
                types[(rtype.group, rtype.version, rtype.plural)] = rtype
        self._types = types

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def find_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rtype in self._types.values():
            if rtype.group == group and rtype.version == version and rtype.kind == kind:
                return rtype
        return None

    def any_version(self, group: str, plural: str) -> ResourceType | None:
        for rtype in self._types.values():
            if rtype.group == group and rtype.plural == plural:
                return rtype
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions (the core group is the empty string)."""
        result: dict[str, list[str]] = {}
        for rtype in self._types.values():
            versions = result.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return result
