"""Discovery documents: what kopf and kubectl read to learn which resources exist.

`/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`, `/version`,
built from the :class:`Registry` on every request, so a CRD is discoverable as soon
as it is stored (and no longer once it is removed).
"""

from __future__ import annotations

import re
from typing import Any

from hearth.local.emulator.errors import ApiError
from hearth.local.emulator.resources import VERBS, Registry

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0+hearth-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA > beta > alpha, then by number (higher first)."""
    match = _VERSION_RE.match(version)
    if match is None:
        return (3, 0, 0)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0))


def groups(registry: Registry) -> dict[str, list[str]]:
    return {
        group: sorted(versions, key=version_priority)
        for group, versions in registry.group_versions().items()
    }


def group_document(registry: Registry, group: str) -> dict[str, Any]:
    versions = groups(registry)[group]
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def static_document(registry: Registry, path: str) -> Any | None:
    """The document for a discovery path, or None if the path is not a discovery path."""
    path = path.rstrip("/") or "/"
    if path == "/version":
        return SERVER_VERSION
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group_document(registry, g) for g in sorted(groups(registry)) if g],
        }
    if path.startswith("/apis/") and path.count("/") == 2:
        group = path.split("/")[2]
        if group not in groups(registry):
            raise not_found()
        return {**group_document(registry, group), "kind": "APIGroup", "apiVersion": "v1"}
    if path == "/":
        paths = ["/api", "/api/v1", "/apis", "/version", "/healthz"]
        for group, versions in groups(registry).items():
            if group:
                paths.append(f"/apis/{group}")
                paths.extend(f"/apis/{group}/{v}" for v in versions)
        return {"paths": sorted(paths)}
    return None


def openapi_v3_document(registry: Registry, path: str) -> Any | None:
    """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself
    (a `fieldValidation` parameter on PATCH), so that it skips client-side validation.
    No schemas are published."""
    path = path.rstrip("/")
    gvs = {(t.group, t.version) for t in registry.all()}
    prefixes = {(f"api/{v}" if not g else f"apis/{g}/{v}"): (g, v) for g, v in gvs}
    if path == "/openapi/v3":
        return {
            "paths": {
                prefix: {"serverRelativeURL": f"/openapi/v3/{prefix}?hash=emulated"}
                for prefix in sorted(prefixes)
            }
        }
    prefix = path.removeprefix("/openapi/v3/")
    if not path.startswith("/openapi/v3/") or prefix not in prefixes:
        return None
    group, version = prefixes[prefix]
    paths: dict[str, Any] = {}
    for rtype in registry.all():
        if (rtype.group, rtype.version) != (group, version):
            continue
        scope = "/namespaces/{namespace}" if rtype.namespaced else ""
        gvk = {"group": group, "version": version, "kind": rtype.kind}
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                {
                    "name": "fieldValidation",
                    "in": "query",
                    "schema": {"type": "string", "uniqueItems": True},
                }
            ],
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"/{prefix}{scope}/{rtype.plural}/{{name}}"] = {"patch": operation}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (emulated)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = [t for t in registry.all() if t.group == group and t.version == version]
    if not types:
        raise not_found()
    resources: list[dict[str, Any]] = []
    for rtype in sorted(types, key=lambda t: t.plural):
        entry: dict[str, Any] = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": list(VERBS),
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        for sub in rtype.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{rtype.plural}/{sub}",
                "singularName": "",
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            elif sub == "binding":
                sub_entry.update(kind="Binding", verbs=["create"])
            elif sub == "log":
                sub_entry.update(verbs=["get"])
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
