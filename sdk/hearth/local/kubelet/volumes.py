"""ConfigMap volumes, projected as files the way a kubelet mounts them.

The process kubelet has no mount namespaces, so a volume can only appear at its
``mountPath`` on this machine's own filesystem. To keep tests from writing anywhere, only
mount paths under the kubelet's ``volume_roots`` (temporary directories a test chose) are
projected; other volumes are left alone (see docs/testing-harness.md).
"""

from __future__ import annotations

import pathlib
from typing import Any

from hearth.local.kubelet.client import KubeClient


class VolumeError(Exception):
    pass


def _allowed(path: pathlib.Path, roots: list[pathlib.Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root or root in resolved.parents for root in roots)


async def project_config_maps(
    client: KubeClient,
    pod: dict[str, Any],
    container: dict[str, Any],
    roots: list[pathlib.Path],
) -> None:
    """Write each configMap volume's keys as files under its mountPath."""
    if not roots:
        return
    volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
    namespace = pod["metadata"]["namespace"]
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"]) or {}
        source = volume.get("configMap")
        target = pathlib.Path(mount["mountPath"])
        if source is None or not _allowed(target, roots):
            continue
        path = f"/api/v1/namespaces/{namespace}/configmaps/{source['name']}"
        try:
            config_map = await client.get(path)
        except Exception as exc:  # a missing ConfigMap blocks the container, as on a node
            if source.get("optional"):
                continue
            raise VolumeError(f'configmap "{source["name"]}" not found: {exc}') from exc
        target.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  (local files)
        for key, value in (config_map.get("data") or {}).items():
            (target / key).write_text(value)
