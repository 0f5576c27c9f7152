"""A small Job controller (the part of kube-controller-manager that runs Jobs).

For each batch/v1 Job it creates pods from the template (owned by the Job, labelled
with `batch.kubernetes.io/controller-uid` and `job-name` as the real controller
does), keeps `parallelism` pods active until `completions` succeeded, retries
failed pods up to `backoffLimit`, and mirrors it all into the Job's status:
`active`, `succeeded`, `failed`, `startTime`, `completionTime`, and the
`Complete` / `Failed` (BackoffLimitExceeded) conditions. Indexed jobs, pod failure
policies, `activeDeadlineSeconds` and suspension are not emulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

import aiohttp

from hearth.local.kubelet.client import ApiStatusError, KubeClient
from hearth.local.kubelet.pods import now

logger = logging.getLogger("hearth.local.jobs")
UID_LABEL = "batch.kubernetes.io/controller-uid"


class JobController:
    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def run(self) -> None:
        await asyncio.gather(
            self._watch("/apis/batch/v1/jobs", self._job_key),
            self._watch("/api/v1/pods", self._pod_key),
            self._work(),
        )

    @staticmethod
    def _job_key(obj: dict[str, Any]) -> tuple[str, str] | None:
        return obj["metadata"]["namespace"], obj["metadata"]["name"]

    @staticmethod
    def _pod_key(obj: dict[str, Any]) -> tuple[str, str] | None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Job" and ref.get("controller"):
                return obj["metadata"]["namespace"], ref["name"]
        return None

    async def _watch(self, path: str, key_of: Any) -> None:
        while True:
            try:
                listing = await self.client.get(path)
                for item in listing["items"]:
                    if (key := key_of(item)) is not None:
                        self._queue.put_nowait(key)
                rv = listing["metadata"]["resourceVersion"]
                while True:
                    async for event in self.client.watch(path, {"resourceVersion": rv}):
                        if event["type"] == "ERROR":
                            raise ApiStatusError(410, str(event))
                        rv = event["object"]["metadata"]["resourceVersion"]
                        if (key := key_of(event["object"])) is not None:
                            self._queue.put_nowait(key)
            except (ApiStatusError, aiohttp.ClientError, OSError) as exc:
                logger.info("job controller watch of %s interrupted (%s)", path, exc)
                await asyncio.sleep(0.2)

    async def _work(self) -> None:
        while True:
            namespace, name = await self._queue.get()
            try:
                await self.reconcile(namespace, name)
            except (ApiStatusError, aiohttp.ClientError) as exc:
                logger.info("job %s/%s not reconciled (%s); retrying", namespace, name, exc)
                await asyncio.sleep(0.2)
                self._queue.put_nowait((namespace, name))

    async def reconcile(self, namespace: str, name: str) -> None:
        try:
            job = await self.client.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
        except ApiStatusError as exc:
            if exc.status == 404:
                return
            raise
        meta, spec, status = job["metadata"], job.get("spec", {}), job.get("status") or {}
        if meta.get("deletionTimestamp"):
            return
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            return
        pods = (
            await self.client.get(
                f"/api/v1/namespaces/{namespace}/pods",
                {"labelSelector": f"{UID_LABEL}={meta['uid']}"},
            )
        )["items"]
        phases = [p.get("status", {}).get("phase") for p in pods]
        succeeded = phases.count("Succeeded")
        failed = phases.count("Failed")
        active = [
            p
            for p in pods
            if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]
        completions = int(spec.get("completions", 1))
        parallelism = int(spec.get("parallelism", 1))
        new_status: dict[str, Any] = {
            "startTime": status.get("startTime") or now(),
            "active": len(active),
            "succeeded": succeeded,
            "failed": failed,
            "ready": sum(1 for p in active if _pod_ready(p)),
        }
        if succeeded >= completions:
            new_status["completionTime"] = now()
            new_status["conditions"] = [
                _condition("SuccessCriteriaMet", "CompletionsReached"),
                _condition("Complete", "CompletionsReached"),
            ]
        elif failed > int(spec.get("backoffLimit", 6)):
            new_status["conditions"] = [
                _condition("FailureTarget", "BackoffLimitExceeded"),
                _condition(
                    "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                ),
            ]
            for pod in active:
                with contextlib.suppress(ApiStatusError):
                    await self.client.request(
                        "DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}"
                    )
        else:
            wanted = min(parallelism, completions - succeeded) - len(active)
            for _ in range(max(wanted, 0)):
                await self.client.request(
                    "POST", f"/api/v1/namespaces/{namespace}/pods", _pod_from(job)
                )
                new_status["active"] += 1
        current = {k: status.get(k) for k in new_status}
        if current != new_status:
            await self.client.merge_patch(
                f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}/status", {"status": new_status}
            )


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _condition(kind: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now(),
        "lastTransitionTime": now(),
    }


def _pod_from(job: dict[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    template = copy.deepcopy(job["spec"].get("template") or {})
    pod_meta = template.get("metadata") or {}
    labels = {
        **(pod_meta.get("labels") or {}),
        UID_LABEL: meta["uid"],
        "batch.kubernetes.io/job-name": meta["name"],
        "controller-uid": meta["uid"],
        "job-name": meta["name"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": pod_meta.get("annotations") or {},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template.get("spec") or {},
    }
