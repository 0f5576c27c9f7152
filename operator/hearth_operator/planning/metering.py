"""GPU-seconds: each dedicated replica's time per UTC hour, from its pod's timestamps.

Fireworks bills a dedicated deployment per GPU-second: for each replica, from the moment
it is scheduled until it is deleted, acceleratorCount x seconds, per accelerator type. A
CPU replica counts replica-seconds under the type ``CPU``.

Everything here is computed from what the pod object says (when it was scheduled, when
its containers finished, when its deletion was seen), never from timers, so the
operator can compute the same numbers again after a restart. The ledger stores one row
per (pod uid, hour) and a write replaces it: recomputing never adds.

Pure: pods (plain dicts) and a clock in, rows out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hearth import names

from ..constants import LABEL_DEPLOYMENT
from .account import gpus_of_pod
from .common import Obj, is_terminating

HOUR = timedelta(hours=1)
#: The accelerator type of a pod whose annotation is missing (an older operator's pod).
UNSPECIFIED = "ACCELERATOR_TYPE_UNSPECIFIED"


@dataclass(frozen=True)
class ReplicaSpan:
    """One replica's billable time: from scheduled to deleted (``end`` None: still on)."""

    pod_uid: str
    pod: str
    account: str
    deployment: str  # accounts/<a>/deployments/<d>
    accelerator_type: str
    accelerator_count: int  # per replica; 0 for CPU
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class HourSeconds:
    """A replica's seconds within one UTC hour: what the ledger stores per pod and hour."""

    pod_uid: str
    pod: str
    hour: datetime
    account: str
    deployment: str
    accelerator_type: str
    accelerator_count: int
    replica_seconds: float

    @property
    def accelerator_seconds(self) -> float:
        """GPU-seconds: replica seconds x accelerators; a CPU replica counts as one."""
        return self.replica_seconds * max(self.accelerator_count, 1)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp of the API (``...Z``), None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def hour_of(time: datetime) -> datetime:
    """The start of the UTC hour ``time`` falls in."""
    return time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def period_start(now: datetime) -> datetime:
    """The start of the billing period ``now`` falls in: the UTC calendar month."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def scheduled_at(pod: Obj) -> datetime | None:
    """When the pod was bound to a node: the PodScheduled condition's transition to True.

    A pod that reports no such condition but runs (or ran) counts from ``status.startTime``
    (the kubelet's start). A pod never scheduled has no time, and no billable span.
    """
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            time = parse_time(condition.get("lastTransitionTime"))
            if time is not None:
                return time
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return parse_time(status.get("startTime"))
    return None


def finished_at(pod: Obj) -> datetime | None:
    """When the last container stopped, if every container has stopped; else None."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ends: list[datetime] = []
    for status in statuses:
        terminated = (status.get("state") or {}).get("terminated")
        end = parse_time((terminated or {}).get("finishedAt"))
        if end is None:
            return None
        ends.append(end)
    return max(ends) if ends else None


def replica_span(pod: Obj, *, gone_at: datetime | None = None) -> ReplicaSpan | None:
    """The billable span of one model-server pod, None if it was never scheduled.

    It ends when the pod's containers have all stopped, if the pod is being deleted or has
    finished (``Succeeded``/``Failed``: a crashed container about to restart keeps its
    replica); otherwise when its deletion was seen (``gone_at``, the watch's DELETED
    event); otherwise it is still running (``end`` None).
    """
    metadata = pod.get("metadata") or {}
    start = scheduled_at(pod)
    uid, namespace = metadata.get("uid"), metadata.get("namespace")
    deployment = (metadata.get("labels") or {}).get(LABEL_DEPLOYMENT)
    if start is None or not uid or not namespace or not deployment:
        return None
    end: datetime | None = None
    phase = (pod.get("status") or {}).get("phase")
    if is_terminating(pod) or phase in ("Succeeded", "Failed"):
        end = finished_at(pod)
    if gone_at is not None:
        end = gone_at if end is None else min(end, gone_at)
    accelerator, count = gpus_of_pod(pod)
    return ReplicaSpan(
        pod_uid=uid,
        pod=metadata.get("name") or uid,
        account=namespace,
        deployment=names.format_name(namespace, "deployments", deployment),
        accelerator_type=accelerator or UNSPECIFIED,
        accelerator_count=count,
        start=start,
        end=None if end is None else max(end, start),
    )


def hourly_seconds(
    span: ReplicaSpan, now: datetime, *, since: datetime | None = None
) -> list[HourSeconds]:
    """The span's seconds in every UTC hour it overlaps, up to its end (or ``now``).

    ``since``: only the hours from the one holding ``since`` on (those before it were
    already final when last computed). Hours with no time in them are left out.
    """
    end = span.end if span.end is not None else max(now, span.start)
    hour = hour_of(span.start)
    if since is not None:
        hour = max(hour, hour_of(since))
    rows: list[HourSeconds] = []
    while hour < end:
        seconds = (min(end, hour + HOUR) - max(span.start, hour)).total_seconds()
        if seconds > 0:
            rows.append(
                HourSeconds(
                    pod_uid=span.pod_uid,
                    pod=span.pod,
                    hour=hour,
                    account=span.account,
                    deployment=span.deployment,
                    accelerator_type=span.accelerator_type,
                    accelerator_count=span.accelerator_count,
                    replica_seconds=seconds,
                )
            )
        hour += HOUR
    return rows


def rows_to_write(
    span: ReplicaSpan,
    now: datetime,
    stored: Mapping[datetime, float],
    *,
    since: datetime | None = None,
) -> list[HourSeconds]:
    """The rows of ``span`` whose seconds differ from what the ledger holds (``stored``:
    hour -> seconds of this pod), from the hour of ``since`` on (all hours when None).

    A stored hour the span no longer covers (its end turned out earlier than a previous
    pass assumed) is written as 0, so what is stored is always the span itself.
    """
    if since is not None and span.end is not None:
        since = min(since, span.end)
    desired = hourly_seconds(span, now, since=since)
    covered = {row.hour for row in desired}
    first = hour_of(since) if since is not None else None
    for hour in sorted(stored):
        if hour not in covered and stored[hour] != 0.0 and (first is None or hour >= first):
            desired.append(
                HourSeconds(
                    pod_uid=span.pod_uid,
                    pod=span.pod,
                    hour=hour,
                    account=span.account,
                    deployment=span.deployment,
                    accelerator_type=span.accelerator_type,
                    accelerator_count=span.accelerator_count,
                    replica_seconds=0.0,
                )
            )
    return [row for row in desired if stored.get(row.hour) != row.replica_seconds]


@dataclass(frozen=True)
class Total:
    """This period's sum for one deployment and accelerator type (from the ledger)."""

    account: str
    deployment: str  # accounts/<a>/deployments/<d>
    accelerator_type: str
    replica_seconds: float
    accelerator_seconds: float


def usage_status(totals: Iterable[Total], start: datetime) -> dict[str, Any]:
    """``status.acceleratorUsage`` of a Deployment or an Account: this period's sums per
    accelerator type, in whole seconds (GPU-seconds; replica-seconds for CPU)."""
    gpu: dict[str, float] = {}
    replica: dict[str, float] = {}
    for total in totals:
        kind = total.accelerator_type
        gpu[kind] = gpu.get(kind, 0.0) + total.accelerator_seconds
        replica[kind] = replica.get(kind, 0.0) + total.replica_seconds
    return {
        "periodStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "acceleratorSeconds": {k: round(v) for k, v in sorted(gpu.items())},
        "replicaSeconds": {k: round(v) for k, v in sorted(replica.items())},
    }


def usage_patch(new: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """``new`` as a merge patch over ``previous``: types of an earlier period that have no
    time in this one are removed (null), not kept by the merge."""
    patch = {**new}
    for field in ("acceleratorSeconds", "replicaSeconds"):
        old = (previous or {}).get(field) or {}
        patch[field] = {**{k: None for k in old if k not in new[field]}, **new[field]}
    return patch


def usage_statuses(
    totals: Iterable[Total], start: datetime
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, dict[str, Any]]]:
    """(status per (account, deployment ID), status per account) for this period."""
    per_deployment: dict[tuple[str, str], list[Total]] = {}
    per_account: dict[str, list[Total]] = {}
    for total in totals:
        deployment_id = total.deployment.rsplit("/", 1)[-1]
        per_deployment.setdefault((total.account, deployment_id), []).append(total)
        per_account.setdefault(total.account, []).append(total)
    return (
        {key: usage_status(group, start) for key, group in per_deployment.items()},
        {key: usage_status(group, start) for key, group in per_account.items()},
    )


@dataclass(frozen=True)
class Tokens:
    """This period's inference billed to one account (the gateway's records, summed)."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


def token_usage_status(tokens: Tokens, start: datetime) -> dict[str, Any]:
    """``status.tokenUsage`` of an Account: this period's requests and tokens."""
    return {
        "periodStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requests": tokens.requests,
        "promptTokens": tokens.prompt_tokens,
        "cachedTokens": tokens.cached_tokens,
        "completionTokens": tokens.completion_tokens,
    }
