"""The periodic resync: one loop for the whole operator instead of a kopf timer per object.

It is a safety net for changes no watch event reports (a base model turning READY, quota
freed in another deployment, an account's usage). kopf timers would do the same per
object, but kopf puts its finalizer on every object with a timer so that it can stop the
timer before the object goes; those objects then cannot be deleted while the operator is
down or after it was uninstalled. This loop needs no finalizer: it lists the objects and
runs each one's reconcile, the same path a watch event takes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

from .context import Context, log
from .controllers.account import refresh_account_status
from .controllers.api_key import reconcile_api_key
from .controllers.dataset import reconcile_dataset
from .controllers.deployed_model import AdapterLoadFailed, reconcile_deployed_model
from .controllers.deployment import reconcile_deployment
from .controllers.finetuning_job import reconcile_finetuning_job
from .controllers.model import reconcile_model

Reconcile = Callable[[Context, str, str], None]


def _account(ctx: Context, _namespace: str, name: str) -> None:
    refresh_account_status(ctx, name)  # usage changes without the Account changing


def _deployed_model(ctx: Context, namespace: str, name: str) -> None:
    try:
        reconcile_deployed_model(ctx, namespace, name)
    except AdapterLoadFailed as error:  # reported in its status; retried next pass
        log.warning("deployed model %s/%s: %s", namespace, name, error)


#: In dependency order: models before what deploys them, accounts (usage) last.
RESYNCED: tuple[tuple[str, Reconcile], ...] = (
    ("Model", reconcile_model),
    ("Deployment", reconcile_deployment),
    ("DeployedModel", _deployed_model),
    ("Dataset", reconcile_dataset),
    ("FineTuningJob", reconcile_finetuning_job),
    ("ApiKey", reconcile_api_key),  # expiry: READY -> EXPIRED with no event to report it
    ("Account", _account),
)


def _objects(ctx: Context, kind: str) -> Iterator[tuple[str, str]]:
    """(namespace, name) of every object of ``kind`` the operator watches."""
    namespaces: tuple[str | None, ...] = ctx.settings.watch_namespaces or (None,)
    if kind == "Account":  # cluster-scoped
        namespaces = (None,)
    for namespace in namespaces:
        for obj in ctx.kube.list(kind, namespace):
            metadata = obj["metadata"]
            yield metadata.get("namespace") or "", metadata["name"]


def resync_pass(ctx: Context, stop: threading.Event | None = None) -> int:
    """Reconcile every watched object once; returns how many were reconciled.

    One failing object (or kind) is logged and skipped, never the end of the pass.
    """
    done = 0
    for kind, reconcile in RESYNCED:
        try:
            objects = list(_objects(ctx, kind))
        except Exception:
            log.exception("resync: could not list %s objects", kind)
            continue
        for namespace, name in objects:
            if stop is not None and stop.is_set():
                return done
            try:
                reconcile(ctx, namespace, name)
            except Exception:
                log.exception("resync: reconciling %s %s/%s failed", kind, namespace, name)
            done += 1
    return done


async def resync_forever(ctx: Context, interval: float) -> None:
    """Run a pass every ``interval`` seconds (after the previous one ended) until cancelled.

    Passes run on a worker thread (the reconciles block on the API); a cancelled loop tells
    a pass in progress to stop after its current object.
    """
    stop = threading.Event()
    try:
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(resync_pass, ctx, stop)
    finally:
        stop.set()
