"""The autoscaler loop: read every ready replica's /metrics, decide, set the scale.

One loop for the whole operator (like the resync, no per-object kopf timer and so no
finalizer). Every ``autoscaler_interval`` seconds it lists the Deployments and their
model-server pods, reads ``/metrics`` of each ready replica concurrently (the servers
answer /metrics without the API token), and hands the reads to the pure planner
(``planning/autoscale.py``). When the decision differs from the scale value it writes the
scale subresource (with the resourceVersion it read, so a concurrent raise by the gateway
or a user is never overwritten), posts an Event with the numbers, and records
``status.lastScaleTime``. ``status.autoscaling`` (load per replica against the targets)
and the ``Autoscaling`` condition are written when the decision's reason changes, and
otherwise at most every ``resync_seconds`` while the numbers move.

The load history lives in memory only: after a restart the windows start again (and the
last request is taken to be the restart), so a restart can delay a change but never
causes one.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from hearth.api import DeploymentSpec, ServingEngine

from ..conditions import Cond, format_time, set_conditions
from ..constants import (
    ANNOTATION_AUTOSCALER,
    AUTOSCALER_DISABLED,
    LABEL_COMPONENT,
    LABEL_DEPLOYMENT,
)
from ..context import Context, log
from ..kube import Obj, _contains, is_status
from ..planning.autoscale import (
    AutoscaleInputs,
    Decision,
    Memory,
    Policy,
    Scrape,
    decide,
    history_span,
    make_sample,
    observe_replicas,
    policy_of,
    remember,
    scaled,
    start_memory,
)
from ..planning.common import is_terminating, pod_failed, pod_ready
from ..planning.deployment import desired_replicas
from ..planning.engines import LOAD_METRIC_NAMES, load_fields, replica_capacity

#: /metrics reads in flight at once.
_CONCURRENT_READS = 64
CONDITION = "Autoscaling"


def parse_metrics(text: str, time: datetime) -> Scrape | None:
    """A Scrape from the Prometheus text of hearth-server or vLLM; None when it lacks the
    running-requests gauge (a server that cannot say its load is not idle either)."""
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in LOAD_METRIC_NAMES:
                totals[sample.name] += float(sample.value)  # summed over label sets
    values = load_fields(totals)  # hearth-server's names or vLLM's
    return None if values is None else Scrape(time=time, **values)


@dataclass
class _Tracked:
    memory: Memory
    #: What the last status write said, and when.
    written: tuple[Any, ...] | None = None
    written_at: datetime | None = None


@dataclass
class _Plan:
    """One Deployment in one pass."""

    namespace: str
    name: str
    deployment: Obj
    policy: Policy | None  # None: not autoscaled (disabled, fixed size, invalid)
    replicas: int
    ready: dict[str, str]  # pod name -> pod IP
    starting: int
    decision: Decision | None = None
    #: What its replicas run: their capacity differs (``replica_capacity``).
    engine: ServingEngine = ServingEngine.HEARTH


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Autoscaler:
    """The loop's state: each Deployment's memory, between passes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.tracked: dict[tuple[str, str], _Tracked] = {}

    async def run_forever(self) -> None:
        interval = self.ctx.settings.autoscaler_interval
        async with httpx.AsyncClient(timeout=self.ctx.settings.autoscaler_scrape_timeout) as http:
            while True:
                try:
                    await self.run_pass(http)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("autoscaler: pass failed")
                await asyncio.sleep(interval)

    async def run_pass(self, http: httpx.AsyncClient) -> list[Decision]:
        """One pass over every Deployment; returns the decisions that changed replicas."""
        deployments, pods = await asyncio.to_thread(self._list)
        plans = [self._plan(d, pods) for d in deployments]
        reads = await self._read_all(http, [p for p in plans if p.policy is not None])
        now = self.ctx.clock()
        for plan in plans:
            if plan.policy is not None:
                plan.decision = self._decide(plan, plan.policy, reads, now)
        live = {(p.namespace, p.name) for p in plans}
        for key in [k for k in self.tracked if k not in live]:
            del self.tracked[key]
        return await asyncio.to_thread(self._apply, plans, now)

    # -- reading ----------------------------------------------------------------------

    def _list(self) -> tuple[list[Obj], dict[tuple[str, str], list[Obj]]]:
        namespaces: tuple[str | None, ...] = self.ctx.settings.watch_namespaces or (None,)
        deployments: list[Obj] = []
        pods: dict[tuple[str, str], list[Obj]] = defaultdict(list)
        for namespace in namespaces:
            deployments += self.ctx.kube.list("Deployment", namespace)
            for pod in self.ctx.kube.list(
                "Pod", namespace, labels={LABEL_COMPONENT: "model-server"}
            ):
                metadata = pod["metadata"]
                owner = (metadata.get("labels") or {}).get(LABEL_DEPLOYMENT)
                if owner:
                    pods[(metadata.get("namespace") or "", owner)].append(pod)
        return deployments, pods

    def _plan(self, deployment: Obj, pods: dict[tuple[str, str], list[Obj]]) -> _Plan:
        metadata = deployment["metadata"]
        namespace, name = metadata.get("namespace") or "", metadata["name"]
        own = [p for p in pods.get((namespace, name), []) if not is_terminating(p)]
        live = [p for p in own if not pod_failed(p)]
        ready = {
            p["metadata"]["name"]: p["status"]["podIP"]
            for p in live
            if pod_ready(p) and (p.get("status") or {}).get("podIP")
        }
        plan = _Plan(namespace, name, deployment, None, 0, ready, len(live) - len(ready))
        if is_terminating(deployment):
            return plan
        try:
            spec = DeploymentSpec.model_validate(deployment.get("spec") or {})
        except ValidationError:
            return plan  # the Deployment's own reconcile reports the invalid spec
        plan.replicas = desired_replicas(spec)
        plan.engine = spec.serving_engine
        disabled = (metadata.get("annotations") or {}).get(ANNOTATION_AUTOSCALER)
        if disabled == AUTOSCALER_DISABLED:
            self.tracked.pop((namespace, name), None)
            plan.decision = Decision(
                plan.replicas,
                "Disabled",
                f"annotation {ANNOTATION_AUTOSCALER}={AUTOSCALER_DISABLED}: replicas are "
                "left to the scale subresource (kubectl scale, an HPA, KEDA)",
                active=False,
            )
            return plan
        policy = policy_of(spec, window_factor=self.ctx.settings.autoscaler_window_factor)
        if policy.min_replicas == policy.max_replicas:
            self.tracked.pop((namespace, name), None)
            plan.decision = decide(
                AutoscaleInputs(policy, plan.replicas, (), self.ctx.clock(), None, self.ctx.clock())
            )
            return plan
        plan.policy = policy
        return plan

    async def _read_all(
        self, http: httpx.AsyncClient, plans: list[_Plan]
    ) -> dict[tuple[str, str], Scrape | None]:
        port = self.ctx.settings.server_port
        limit = asyncio.Semaphore(_CONCURRENT_READS)

        async def read(ip: str) -> Scrape | None:
            async with limit:
                try:
                    response = await http.get(f"http://{ip}:{port}/metrics")
                except httpx.HTTPError:
                    return None
                if response.status_code != 200:
                    return None
                try:
                    return parse_metrics(response.text, self.ctx.clock())
                except ValueError:
                    return None

        keys = [(p.namespace, pod) for p in plans for pod in p.ready]
        ips = [p.ready[pod] for p in plans for pod in p.ready]
        results = await asyncio.gather(*(read(ip) for ip in ips))
        return dict(zip(keys, results, strict=True))

    # -- deciding ---------------------------------------------------------------------

    def _decide(
        self,
        plan: _Plan,
        policy: Policy,
        reads: dict[tuple[str, str], Scrape | None],
        now: datetime,
    ) -> Decision:
        key = (plan.namespace, plan.name)
        tracked = self.tracked.get(key)
        if tracked is None:
            status = plan.deployment.get("status") or {}
            memory = start_memory(now, plan.replicas, _time(status.get("lastScaleTime")))
            tracked = self.tracked[key] = _Tracked(memory)
        memory = observe_replicas(tracked.memory, plan.replicas, now)
        scrapes = {pod: reads.get((plan.namespace, pod)) for pod in plan.ready}
        targets = policy.load_targets
        capacity = replica_capacity(plan.engine, self.ctx.settings)
        sample = make_sample(now, scrapes, memory.scrapes, targets, capacity)
        tracked.memory = remember(
            memory, sample, scrapes, targets, history_span(policy), starting=plan.starting
        )
        return decide(
            AutoscaleInputs(
                policy=policy,
                replicas=plan.replicas,
                history=tracked.memory.history,
                now=now,
                last_scale=tracked.memory.last_scale,
                last_active=tracked.memory.last_active,
                starting=plan.starting,
            )
        )

    # -- writing ----------------------------------------------------------------------

    def _apply(self, plans: list[_Plan], now: datetime) -> list[Decision]:
        changed: list[Decision] = []
        for plan in plans:
            if plan.decision is None:
                continue
            try:
                if self._apply_one(plan, plan.decision, now):
                    changed.append(plan.decision)
            except Exception:
                log.exception("autoscaler: deployment %s/%s", plan.namespace, plan.name)
        return changed

    def _apply_one(self, plan: _Plan, decision: Decision, now: datetime) -> bool:
        ctx, key = self.ctx, (plan.namespace, plan.name)
        tracked = self.tracked.get(key)
        scale = decision.replicas != plan.replicas and tracked is not None
        if not scale and self._status(plan.deployment, plan, decision, now, tracked) is None:
            return False  # nothing to say that the listed object does not already say
        with ctx.locks.hold("Deployment", plan.namespace, plan.name):
            fresh = ctx.kube.get("Deployment", plan.name, plan.namespace)
            if fresh is None or is_terminating(fresh):
                return False
            try:
                spec = DeploymentSpec.model_validate(fresh.get("spec") or {})
            except ValidationError:
                return False
            if desired_replicas(spec) != plan.replicas:
                return False  # changed since the list: the next pass takes it in
            if scale and tracked is not None:
                try:
                    ctx.kube.patch_scale(
                        "Deployment",
                        plan.name,
                        plan.namespace,
                        decision.replicas,
                        resource_version=fresh["metadata"].get("resourceVersion"),
                    )
                except ApiException as error:
                    if is_status(error, 409):  # written meanwhile: decide again next pass
                        return False
                    raise
                tracked.memory = scaled(tracked.memory, decision.replicas, now)
                log.info("autoscaler: %s/%s %s", plan.namespace, plan.name, decision.message)
                ctx.event(fresh, "Normal", decision.reason, decision.message)
            status = self._status(fresh, plan, decision, now, tracked, force=scale)
            if status is not None:
                ctx.write_status(fresh, status)
                if tracked is not None:
                    tracked.written, tracked.written_at = _summary(decision, status), now
            return scale

    def _status(
        self,
        deployment: Obj,
        plan: _Plan,
        decision: Decision,
        now: datetime,
        tracked: _Tracked | None,
        *,
        force: bool = False,
    ) -> dict[str, Any] | None:
        """The status to write, or None when there is nothing new (or only numbers that
        moved within the resync period)."""
        message = decision.message
        if plan.policy is not None and plan.policy.problems:
            message = f"{message} ({'; '.join(plan.policy.problems)})"
        status: dict[str, Any] = {}
        if plan.policy is not None and decision.load is not None:
            status["autoscaling"] = {
                "currentLoad": {k: round(v, 3) for k, v in sorted(decision.load.items())},
                "loadTargets": dict(plan.policy.load_targets),
                "recommendedReplicaCount": decision.recommended,
                "sampledReplicaCount": decision.sampled,
                "sampleTime": format_time(decision.sample_time or now),
            }
        last_scale = tracked.memory.last_scale if tracked is not None else None
        if last_scale is not None:
            status["lastScaleTime"] = format_time(last_scale)
        status["conditions"] = set_conditions(
            (deployment.get("status") or {}).get("conditions"),
            [Cond(CONDITION, decision.active, decision.reason, message)],
            generation=deployment["metadata"].get("generation"),
            now=now,
        )
        if force:
            return status
        said = _summary(decision, status)
        if tracked is not None and tracked.written is not None:
            if said == tracked.written:
                return None
            moved_only = said[:2] == tracked.written[:2]
            recent = tracked.written_at is not None and (
                (now - tracked.written_at).total_seconds() < self.ctx.settings.resync_seconds
            )
            if moved_only and recent:
                return None
        current = dict(deployment.get("status") or {})
        without_time = {k: v for k, v in status.items() if k != "autoscaling"}
        if _contains(current, without_time) and (
            "autoscaling" not in status
            or {k: v for k, v in (current.get("autoscaling") or {}).items() if k != "sampleTime"}
            == {k: v for k, v in status["autoscaling"].items() if k != "sampleTime"}
        ):
            return None  # the object already says all of it
        return status


def _summary(decision: Decision, status: dict[str, Any]) -> tuple[Any, ...]:
    """What a status write said, to tell a new reason from numbers that moved."""
    autoscaling = status.get("autoscaling") or {}
    return (
        decision.reason,
        decision.active,
        decision.message,
        status.get("lastScaleTime"),
        str(autoscaling.get("currentLoad")),
        autoscaling.get("recommendedReplicaCount"),
    )


async def autoscale_forever(ctx: Context) -> None:
    """The loop ``runtime.py`` starts with the operator (when the autoscaler is enabled)."""
    await Autoscaler(ctx).run_forever()
