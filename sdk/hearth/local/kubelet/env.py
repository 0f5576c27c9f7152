"""Container environment as the kubelet builds it: `env` (values, the downward API,
ConfigMap and Secret keys) and `envFrom`, plus the pod IP as `POD_IP`."""

from __future__ import annotations

import base64
import re
from typing import Any

from hearth.local.kubelet.client import ApiStatusError, KubeClient


class EnvError(Exception):
    """A reference cannot be resolved: the container waits (CreateContainerConfigError)."""


_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _FIELD_RE.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldRef {path!r}")


async def _key_ref(
    client: KubeClient, namespace: str, kind: str, ref: dict[str, Any]
) -> str | None:
    plural = "secrets" if kind == "secret" else "configmaps"
    try:
        obj = await client.get(f"/api/v1/namespaces/{namespace}/{plural}/{ref['name']}")
    except ApiStatusError as exc:
        if exc.status == 404 and ref.get("optional"):
            return None
        raise EnvError(f'{kind} "{ref["name"]}" not found') from exc
    data = obj.get("data") or {}
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise EnvError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    value = data[ref["key"]]
    return base64.b64decode(value).decode() if kind == "secret" else str(value)


async def _from_source(
    client: KubeClient, namespace: str, source: dict[str, Any]
) -> dict[str, str]:
    kind, ref = (
        ("secret", source["secretRef"])
        if "secretRef" in source
        else ("configmap", source["configMapRef"])
    )
    plural = "secrets" if kind == "secret" else "configmaps"
    try:
        obj = await client.get(f"/api/v1/namespaces/{namespace}/{plural}/{ref['name']}")
    except ApiStatusError as exc:
        if exc.status == 404 and ref.get("optional"):
            return {}
        raise EnvError(f'{kind} "{ref["name"]}" not found') from exc
    prefix = source.get("prefix", "")
    data = obj.get("data") or {}
    return {
        prefix + k: base64.b64decode(v).decode() if kind == "secret" else str(v)
        for k, v in data.items()
    }


def _expand(value: str, env: dict[str, str]) -> str:
    """`$(VAR)` references to earlier variables, `$$` escapes, as the kubelet expands them."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, value)


async def container_env(
    client: KubeClient,
    pod: dict[str, Any],
    container: dict[str, Any],
    pod_ip: str,
    host_ip: str,
    base: dict[str, str],
) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    env["POD_IP"] = pod_ip  # the process kubelet's promise; the pod's own env may override it
    env["HOSTNAME"] = pod["metadata"]["name"]
    for source in container.get("envFrom") or []:
        env.update(await _from_source(client, namespace, source))
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = _expand(str(item["value"]), env)
            continue
        value_from = item.get("valueFrom") or {}
        value: str | None
        if "fieldRef" in value_from:
            value = field_ref(pod, value_from["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in value_from:
            value = await _key_ref(client, namespace, "secret", value_from["secretKeyRef"])
        elif "configMapKeyRef" in value_from:
            value = await _key_ref(client, namespace, "configmap", value_from["configMapKeyRef"])
        elif "resourceFieldRef" in value_from:
            value = "0"  # no resource accounting on a process kubelet
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def expand_args(items: list[str], env: dict[str, str]) -> list[str]:
    return [_expand(str(item), env) for item in items]
