"""GPU-seconds metering: writes each replica's time per hour into the usage ledger.

One loop for the whole operator (like the resync and the autoscaler). Every
``metering_interval`` seconds it lists the model-server pods, computes each one's seconds
per UTC hour from its timestamps (``planning/metering.py``) and writes the rows that
changed into the ledger the gateway writes (``hearth.ledger``; one row per pod and hour,
replaced on every write). It then sums the period (the UTC month) per Deployment and per
Account from the ledger and writes ``status.acceleratorUsage``, and the gateway's request
records per Account into ``status.tokenUsage``.

A replica's end is the moment its containers stopped, or the moment the watch reported
it deleted (``pod_deleted``, called from the pod event handler); the next pass writes it.
After a restart, the pods still there are computed again from their timestamps and
compared with what the ledger holds, so nothing is lost or counted twice; a pod deleted
while the operator was down keeps the seconds written before it went down.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

from hearth.ledger import AcceleratorLedger, AcceleratorSeconds, open_ledger

from ..constants import LABEL_COMPONENT
from ..context import Context, log
from ..kube import Obj
from ..planning.metering import (
    HOUR,
    HourSeconds,
    ReplicaSpan,
    Tokens,
    Total,
    hour_of,
    period_start,
    replica_span,
    rows_to_write,
    token_usage_status,
    usage_patch,
    usage_status,
    usage_statuses,
)

#: How long the last pass on shutdown may take (it writes deletions seen since the last).
FINAL_PASS_TIMEOUT = 10.0


class Meter:
    """What the metering loop remembers between passes (all of it can be rebuilt)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        #: Pods whose deletion the watch reported, with the moment it did.
        self._gone: dict[str, tuple[Obj, datetime]] = {}
        #: What the ledger holds per pod uid: hour -> seconds (read once per pod).
        self._stored: dict[str, dict[datetime, float]] = {}
        #: When each pod's rows were last computed: earlier hours were final then.
        self._computed: dict[str, datetime] = {}

    def pod_deleted(self, pod: Obj) -> None:
        """The watch reported ``pod`` deleted: its replica ended now (thread-safe)."""
        uid = (pod.get("metadata") or {}).get("uid")
        if uid:
            with self._lock:
                self._gone.setdefault(uid, (pod, self.ctx.clock()))

    async def run_pass(self, ledger: AcceleratorLedger) -> list[HourSeconds]:
        """One pass: writes the rows that changed and the statuses; returns the rows."""
        pods = await asyncio.to_thread(self._list_pods)
        now = self.ctx.clock()
        with self._lock:
            gone = dict(self._gone)
        spans: list[ReplicaSpan] = []
        listed: set[str] = set()
        for pod in pods:
            uid = pod["metadata"].get("uid")
            listed.add(uid)
            if uid not in gone and (span := replica_span(pod)) is not None:
                spans.append(span)
        for pod, gone_at in gone.values():
            if (span := replica_span(pod, gone_at=gone_at)) is not None:
                spans.append(span)
        unseen = [s.pod_uid for s in spans if s.pod_uid not in self._stored]
        if unseen:
            for uid in unseen:
                self._stored[uid] = {}
            for held in await ledger.accelerator_rows(unseen):
                self._stored[held.pod_uid][held.hour] = held.replica_seconds
        rows: list[HourSeconds] = []
        for span in spans:
            since = self._computed.get(span.pod_uid)
            rows += rows_to_write(span, now, self._stored[span.pod_uid], since=since)
        await ledger.record_accelerator_seconds([_ledger_row(r) for r in rows])
        for row in rows:
            self._stored[row.pod_uid][row.hour] = row.replica_seconds
        for span in spans:
            self._computed[span.pod_uid] = now
        # Written for good: deleted pods, and pods gone without a deletion seen (their
        # seconds stay as last written).
        with self._lock:
            for uid in gone:
                self._gone.pop(uid, None)
        for uid in [u for u in self._stored if u not in listed or u in gone]:
            self._stored.pop(uid, None)
            self._computed.pop(uid, None)
        await self._write_statuses(ledger, now)
        return rows

    def _list_pods(self) -> list[Obj]:
        namespaces: tuple[str | None, ...] = self.ctx.settings.watch_namespaces or (None,)
        pods: list[Obj] = []
        for namespace in namespaces:
            pods += self.ctx.kube.list("Pod", namespace, labels={LABEL_COMPONENT: "model-server"})
        return pods

    async def _write_statuses(self, ledger: AcceleratorLedger, now: datetime) -> None:
        start = period_start(now)
        found = await ledger.accelerator_totals(None, start, hour_of(now) + HOUR)
        totals = [
            Total(
                t.account,
                t.deployment,
                t.accelerator_type,
                t.replica_seconds,
                t.accelerator_seconds,
            )
            for t in found
        ]
        deployments, accounts = usage_statuses(totals, start)
        tokens = {
            t.account: Tokens(t.requests, t.prompt_tokens, t.cached_tokens, t.completion_tokens)
            for t in await ledger.account_tokens(start, now + HOUR)
        }
        await asyncio.to_thread(self._apply_statuses, deployments, accounts, tokens, start)

    def _apply_statuses(
        self,
        deployments: dict[tuple[str, str], dict[str, object]],
        accounts: dict[str, dict[str, object]],
        tokens: dict[str, Tokens],
        start: datetime,
    ) -> None:
        empty = usage_status([], start)
        watched = set(self.ctx.settings.watch_namespaces)
        namespaces: tuple[str | None, ...] = self.ctx.settings.watch_namespaces or (None,)
        objects: list[tuple[Obj, dict[str, object], dict[str, object]]] = []
        for namespace in namespaces:
            for deployment in self.ctx.kube.list("Deployment", namespace):
                metadata = deployment["metadata"]
                key = (metadata.get("namespace") or "", metadata["name"])
                objects.append((deployment, deployments.get(key, empty), {}))
        for account in self.ctx.kube.list("Account"):
            name = account["metadata"]["name"]
            if not watched or name in watched:
                billed = token_usage_status(tokens.get(name, Tokens()), start)
                objects.append((account, accounts.get(name, empty), {"tokenUsage": billed}))
        for obj, usage, more in objects:
            previous = (obj.get("status") or {}).get("acceleratorUsage")
            try:
                patch = {"acceleratorUsage": usage_patch(usage, previous), **more}
                self.ctx.write_status(obj, patch)
            except Exception:
                metadata = obj["metadata"]
                log.exception(
                    "metering: status of %s %s/%s",
                    obj.get("kind"),
                    metadata.get("namespace") or "",
                    metadata["name"],
                )


def _ledger_row(row: HourSeconds) -> AcceleratorSeconds:
    return AcceleratorSeconds(
        pod_uid=row.pod_uid,
        pod=row.pod,
        hour=row.hour,
        account=row.account,
        deployment=row.deployment,
        accelerator_type=row.accelerator_type,
        accelerator_count=row.accelerator_count,
        replica_seconds=row.replica_seconds,
    )


async def meter_forever(ctx: Context, meter: Meter) -> None:
    """The loop ``runtime.py`` starts when ``ledger_url`` is set: opens the ledger (retrying
    while the database is unreachable), then runs a pass every ``metering_interval``; on
    shutdown one last pass writes the deletions seen since the previous one."""
    interval = ctx.settings.metering_interval
    url = ctx.settings.ledger_url
    ledger = None
    while ledger is None:
        try:
            ledger = await asyncio.to_thread(open_ledger, url, workers=2)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("metering: cannot open the usage ledger; retrying")
            await asyncio.sleep(interval)
    try:
        while True:
            await _pass(meter, ledger)
            await asyncio.sleep(interval)
    finally:
        try:
            await asyncio.wait_for(_pass(meter, ledger), FINAL_PASS_TIMEOUT)
        finally:
            await ledger.close()


async def _pass(meter: Meter, ledger: AcceleratorLedger) -> None:
    try:
        rows = await meter.run_pass(ledger)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("metering: pass failed")
        return
    if rows:
        log.debug("metering: wrote %d rows", len(rows))
