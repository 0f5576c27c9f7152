"""Per-kind behaviour of built-in types that clients rely on.

Only the parts an operator notices are emulated: defaulting that controllers read
back (pod restartPolicy and grace period, service clusterIP and targetPort, secret
`stringData`), the initial status a kind gets on creation, and the update rules the
real server enforces with a 422 (a pod's spec is immutable except container images,
a Job's template is immutable, `immutable: true` ConfigMaps and Secrets).
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import itertools
import re
from typing import Any

from hearth.local.emulator.errors import ApiError, invalid
from hearth.local.emulator.resources import ResourceType

_cluster_ips = (str(ipaddress.IPv4Address("10.96.0.10") + i) for i in itertools.count())


def initial_status(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The status a new object starts with (whatever the client sent is dropped)."""
    key = (rtype.group, rtype.kind)
    if key == ("", "Pod"):
        return {"phase": "Pending", "qosClass": _qos_class(obj)}
    if key == ("", "Namespace"):
        return {"phase": "Active"}
    if key == ("", "PersistentVolumeClaim"):
        return {"phase": "Pending"}
    if key == ("", "Service"):
        return {"loadBalancer": {}}
    if key == ("", "Node"):
        return copy.deepcopy(obj.get("status")) or {}
    if key == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        names = obj.get("spec", {}).get("names", {})
        accepted = dict(names)
        accepted.setdefault("singular", str(names.get("kind", "")).lower())
        accepted.setdefault("listKind", f"{names.get('kind', '')}List")
        return {
            "acceptedNames": accepted,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "storedVersions": [
                v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")
            ],
        }
    return None


def _qos_class(pod: dict[str, Any]) -> str:
    containers = pod.get("spec", {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits", {}).get(res)
        and r.get("requests", {}).get(res, r["limits"][res]) == r["limits"][res]
        for r in resources
        for res in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def apply_defaults(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Server-side defaulting of built-in kinds (in place, on create and update)."""
    key = (rtype.group, rtype.kind)
    spec = obj.get("spec")
    if key == ("", "Pod") and isinstance(spec, dict):
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        for container in spec.get("containers") or []:
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("imagePullPolicy", "IfNotPresent")
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")
    elif key == ("", "Service") and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None" and not spec.get("clusterIP"):
            spec["clusterIP"] = next(_cluster_ips)
            spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif key == ("", "Secret"):
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for name, value in string_data.items():
                data[name] = base64.b64encode(str(value).encode()).decode()
    elif key == ("", "Namespace"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = (
            obj["metadata"]["name"]
        )
    elif key == ("batch", "Job") and isinstance(spec, dict):
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        template_spec = spec.setdefault("template", {}).setdefault("spec", {})
        template_spec.setdefault("restartPolicy", "Never")


_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def pod_spec_errors(spec: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """The checks of the API server's pod validation that operators trip over."""
    from hearth.local.emulator.quota import parse_quantity  # quota imports this module

    causes: list[tuple[str, str]] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append((f"{path}.containers", "Required value"))
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(field) or []):
            where = f"{path}.{field}[{i}]"
            cname = str(container.get("name") or "")
            if not cname:
                causes.append((f"{where}.name", "Required value"))
            elif len(cname) > 63 or not _LABEL.match(cname):
                causes.append(
                    (f"{where}.name", f'Invalid value: "{cname}": a lowercase RFC 1123 label')
                )
            elif cname in seen:
                causes.append((f"{where}.name", f'Duplicate value: "{cname}"'))
            seen.add(cname)
            if not container.get("image"):
                causes.append((f"{where}.image", "Required value"))
            for j, env in enumerate(container.get("env") or []):
                if not _ENV_NAME.match(str(env.get("name") or "")):
                    causes.append(
                        (
                            f"{where}.env[{j}].name",
                            f'Invalid value: "{env.get("name")}": a valid environment '
                            "variable name must consist of alphabetic characters, "
                            "digits, '_', '-', or '.', and must not start with a digit",
                        )
                    )
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            for resource in set(requests) | set(limits):
                try:
                    request = parse_quantity(requests[resource]) if resource in requests else None
                    limit = parse_quantity(limits[resource]) if resource in limits else None
                except ValueError as exc:
                    causes.append((f"{where}.resources", f"Invalid value: {exc}"))
                    continue
                if resource in _STANDARD_RESOURCES or resource.startswith("hugepages-"):
                    if request is not None and limit is not None and request > limit:
                        causes.append(
                            (
                                f"{where}.resources.requests",
                                f'Invalid value: "{requests[resource]}": must be less '
                                f"than or equal to {resource} limit",
                            )
                        )
                elif limit is None:
                    causes.append(
                        (
                            f"{where}.resources.limits",
                            "Required value: Limit must be set for non overcommitable resources",
                        )
                    )
                elif request is not None and request != limit:
                    causes.append(
                        (
                            f"{where}.resources.requests",
                            f"Invalid value: "
                            f'"{requests[resource]}": '
                            "must be equal to "
                            f"{resource} limit",
                        )
                    )
    return causes


def validate_create(rtype: ResourceType, obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    key = (rtype.group, rtype.kind)
    causes: list[tuple[str, str]] = []
    if key == ("", "Pod"):
        causes = pod_spec_errors(obj.get("spec") or {}, "spec")
    elif key == ("batch", "Job"):
        template = obj.get("spec", {}).get("template", {}).get("spec", {})
        causes = pod_spec_errors(template, "spec.template.spec")
        policy = template.get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            )
    elif key == ("", "Service"):
        ports = obj.get("spec", {}).get("ports") or []
        if (
            not ports
            and obj.get("spec", {}).get("type", "ClusterIP") != "ExternalName"
            and obj.get("spec", {}).get("clusterIP") != "None"
        ):
            causes.append(("spec.ports", "Required value"))
        for i, port in enumerate(ports):
            if len(ports) > 1 and not port.get("name"):
                causes.append((f"spec.ports[{i}].name", "Required value"))
    if causes:
        raise invalid(rtype.kind, name, causes, group=rtype.group)


def _without_images(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            container.pop("image", None)
    spec.pop("activeDeadlineSeconds", None)
    spec.pop("tolerations", None)
    spec.pop("nodeName", None)  # set once through the binding subresource
    return spec


def validate_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Reject updates the real server rejects with 422 (only for spec-like fields)."""
    name = old["metadata"]["name"]
    key = (rtype.group, rtype.kind)
    if key == ("", "Pod"):
        if _without_images(old.get("spec", {})) != _without_images(new.get("spec", {})):
            raise invalid(
                "Pod",
                name,
                [
                    (
                        "spec",
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                        "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                        "existing tolerations)",
                    )
                ],
            )
        old_node = old.get("spec", {}).get("nodeName")
        if old_node and new.get("spec", {}).get("nodeName") != old_node:
            raise invalid("Pod", name, [("spec.nodeName", "Forbidden: field is immutable")])
    if key == ("batch", "Job") and old.get("spec", {}).get("template") != new.get("spec", {}).get(
        "template"
    ):
        raise invalid(
            "Job", name, [("spec.template", "Invalid value: field is immutable")], group="batch"
        )
    if key in (("", "ConfigMap"), ("", "Secret")) and old.get("immutable"):
        for field in ("data", "binaryData", "immutable"):
            if old.get(field) != new.get(field):
                raise invalid(
                    rtype.kind,
                    name,
                    [(field, "Forbidden: field is immutable when `immutable` is set")],
                )
    if key == ("", "Service"):
        old_ip = old.get("spec", {}).get("clusterIP")
        if new.get("spec", {}).get("clusterIP") in (None, ""):
            new.setdefault("spec", {})["clusterIP"] = old_ip
            if old_ip:
                new["spec"]["clusterIPs"] = [old_ip]
        elif new["spec"]["clusterIP"] != old_ip:
            raise invalid(
                "Service", name, [("spec.clusterIP", "Invalid value: field is immutable")]
            )


def check_name_change(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    new_meta = new.get("metadata") or {}
    for field in ("name", "namespace"):
        if new_meta.get(field) not in (None, old["metadata"].get(field)):
            raise ApiError(
                400,
                "BadRequest",
                f"the {field} of the object ({new_meta.get(field)}) does not match "
                f"the {field} on the URL ({old['metadata'].get(field)})",
            )
