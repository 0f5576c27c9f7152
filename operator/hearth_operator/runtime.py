"""The kopf wiring: which events run which reconcile, and the operator's entry point.

Every handler is a thin trigger: it names the object and calls the kind's reconcile,
which reads the current state itself. So a watch event, the periodic resync and a restart
all take the same path, and handling an event twice is harmless.

Finalizers: kopf adds its finalizer to every object that has a timer, a daemon or a
mandatory deletion handler. Hearth has no timers (one resync loop replaces them, see
resync.py) and one deletion handler, which applies only to DeployedModels that already
carry ``hearth.dev/unload-adapters`` (put there by their reconcile before it loads an
adapter). So nothing else ever waits for the operator to be deleted, and kopf strips the
finalizer from objects an older operator put it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from hearth.api import GROUP, VERSION

from .constants import (
    DOMAIN,
    FINALIZER_ADAPTERS,
    LABEL_DATASET,
    LABEL_DEPLOYMENT,
    LABEL_FINE_TUNING_JOB,
)
from .context import Context, log
from .controllers.account import reconcile_account
from .controllers.api_key import api_keys_of, reconcile_api_key
from .controllers.autoscaler import autoscale_forever
from .controllers.dataset import reconcile_dataset
from .controllers.deployed_model import (
    AdapterLoadFailed,
    deployed_models_on,
    reconcile_deployed_model,
    unload_deployed_model,
)
from .controllers.deployment import reconcile_deployment
from .controllers.finetuning_job import reconcile_finetuning_job
from .controllers.metering import Meter, meter_forever
from .controllers.model import reconcile_model
from .controllers.user import reconcile_user
from .resync import resync_forever

#: After this many failed unload attempts the DeployedModel is released anyway (with a
#: Warning event), so one unreachable replica cannot wedge a namespace's deletion.
UNLOAD_RETRIES = 5
ADAPTER_RETRY_DELAY = 5.0


def holds_adapters(body: kopf.Body, **_: Any) -> bool:
    """Whether a DeployedModel carries the finalizer: its adapter may be in a server."""
    return FINALIZER_ADAPTERS in (body.get("metadata", {}).get("finalizers") or [])


def build_registry(ctx: Context, *, login: bool = True) -> kopf.OperatorRegistry:
    """All handlers; ``login=False`` leaves logging in to the caller (the test harness)."""
    registry = kopf.OperatorRegistry()
    resync_tasks: list[asyncio.Task[None]] = []
    meter = Meter(ctx)

    if login:

        @kopf.on.login(registry=registry)
        def login_as_our_client(**_: Any) -> kopf.ConnectionInfo:
            # kopf watches with the same credentials the reconcilers use.
            return connection_info(ctx.kube.api.configuration)

    def resource(plural: str) -> dict[str, Any]:
        return {"group": GROUP, "version": VERSION, "plural": plural, "registry": registry}

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's bookkeeping goes into our own annotations and finalizer names, and is
        # never written into status (our CRDs' status schemas would prune it anyway).
        settings.persistence.finalizer = FINALIZER_ADAPTERS
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=DOMAIN)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=DOMAIN, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        settings.execution.max_workers = 16
        settings.watching.server_timeout = 300

    @kopf.on.startup(registry=registry)
    async def start_resync(**_: Any) -> None:
        resync_tasks.append(asyncio.create_task(resync_forever(ctx, ctx.settings.resync_seconds)))
        if ctx.settings.autoscaler_enabled:  # its own loop: load is read every few seconds
            resync_tasks.append(asyncio.create_task(autoscale_forever(ctx)))
        if ctx.settings.ledger_url:  # GPU-seconds into the usage ledger
            resync_tasks.append(asyncio.create_task(meter_forever(ctx, meter)))

    @kopf.on.cleanup(registry=registry)
    async def stop_resync(**_: Any) -> None:
        while resync_tasks:
            task = resync_tasks.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Account (cluster-scoped)
    @kopf.on.resume(**resource("accounts"))
    @kopf.on.create(**resource("accounts"))
    @kopf.on.update(**resource("accounts"))
    def account_changed(name: str, **_: Any) -> None:
        reconcile_account(ctx, name)

    # User
    @kopf.on.resume(**resource("users"))
    @kopf.on.create(**resource("users"))
    @kopf.on.update(**resource("users"))
    def user_changed(namespace: str | None, name: str, reason: str, **_: Any) -> None:
        reconcile_user(ctx, str(namespace), name)
        # Its keys: a key waiting for this user is issued; a new email is bound. (Not on
        # resume: at startup every ApiKey resumes itself.)
        if reason != "resume":
            for key in api_keys_of(ctx, str(namespace), name):
                reconcile_api_key(ctx, str(namespace), key)

    # ApiKey (no finalizer: its Secret, Role and RoleBinding go by garbage collection)
    @kopf.on.resume(**resource("apikeys"))
    @kopf.on.create(**resource("apikeys"))
    @kopf.on.update(**resource("apikeys"))
    def api_key_changed(namespace: str | None, name: str, **_: Any) -> None:
        reconcile_api_key(ctx, str(namespace), name)

    # Model
    @kopf.on.resume(**resource("models"))
    @kopf.on.create(**resource("models"))
    @kopf.on.update(**resource("models"))
    def model_changed(namespace: str | None, name: str, **_: Any) -> None:
        reconcile_model(ctx, str(namespace), name)

    # Deployment
    @kopf.on.resume(**resource("deployments"))
    @kopf.on.create(**resource("deployments"))
    @kopf.on.update(**resource("deployments"))
    def deployment_changed(namespace: str | None, name: str, **_: Any) -> None:
        reconcile_deployment(ctx, str(namespace), name)

    # A replica changed (created, became ready, crashed, was deleted): its Deployment and
    # the DeployedModels on it reconcile again.
    @kopf.on.event("", "v1", "pods", labels={LABEL_DEPLOYMENT: kopf.PRESENT}, registry=registry)
    def replica_event(
        namespace: str | None,
        labels: Mapping[str, str],
        type: str | None,
        body: kopf.Body,
        **_: Any,
    ) -> None:
        if type == "DELETED":  # its replica time ends now (metering)
            meter.pod_deleted(dict(body))
        deployment, account = labels[LABEL_DEPLOYMENT], str(namespace)
        reconcile_deployment(ctx, account, deployment)
        for name in deployed_models_on(ctx, account, deployment):
            try:
                reconcile_deployed_model(ctx, account, name)
            except AdapterLoadFailed as error:
                log.warning("deployed model %s/%s: %s", namespace, name, error)

    # DeployedModel
    @kopf.on.resume(**resource("deployedmodels"))
    @kopf.on.create(**resource("deployedmodels"))
    @kopf.on.update(**resource("deployedmodels"))
    def deployed_model_changed(namespace: str | None, name: str, **_: Any) -> None:
        try:
            reconcile_deployed_model(ctx, str(namespace), name)
        except AdapterLoadFailed as error:
            raise kopf.TemporaryError(str(error), delay=ADAPTER_RETRY_DELAY) from error

    # Dataset (the spec is immutable: validated once)
    @kopf.on.resume(**resource("datasets"))
    @kopf.on.create(**resource("datasets"))
    def dataset_created(namespace: str | None, name: str, **_: Any) -> None:
        reconcile_dataset(ctx, str(namespace), name)

    # FineTuningJob
    @kopf.on.resume(**resource("finetuningjobs"))
    @kopf.on.create(**resource("finetuningjobs"))
    @kopf.on.update(**resource("finetuningjobs"))
    def finetuning_job_changed(namespace: str | None, name: str, **_: Any) -> None:
        reconcile_finetuning_job(ctx, str(namespace), name)

    # Validation and training Jobs report back through their status.
    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_DATASET: kopf.PRESENT}, registry=registry)
    def validation_job_event(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        reconcile_dataset(ctx, str(namespace), labels[LABEL_DATASET])

    @kopf.on.event(
        "", "v1", "pods", labels={LABEL_FINE_TUNING_JOB: kopf.PRESENT}, registry=registry
    )
    @kopf.on.event(
        "batch", "v1", "jobs", labels={LABEL_FINE_TUNING_JOB: kopf.PRESENT}, registry=registry
    )
    def training_event(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        reconcile_finetuning_job(ctx, str(namespace), labels[LABEL_FINE_TUNING_JOB])

    # Only DeployedModels holding the finalizer: kopf then neither adds it to others nor
    # takes it off these, and releases it once this handler succeeds.
    @kopf.on.delete(**resource("deployedmodels"), when=holds_adapters)
    def deployed_model_deleted(body: kopf.Body, retry: int, **_: Any) -> None:
        problems = unload_deployed_model(ctx, dict(body))
        if not problems:
            return
        message = "; ".join(problems)
        if retry + 1 >= UNLOAD_RETRIES:
            ctx.event(
                dict(body),
                "Warning",
                "UnloadFailed",
                f"gave up unloading after {UNLOAD_RETRIES} attempts: {message}",
            )
            return
        raise kopf.TemporaryError(message, delay=ADAPTER_RETRY_DELAY)

    return registry


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's view of a kubernetes-client Configuration (token or client certificate)."""
    header = configuration.get_api_key_with_prefix("BearerToken") or ""
    scheme, _, token = header.partition(" ") if " " in header else ("Bearer", "", header)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme if token else None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def run(
    ctx: Context,
    *,
    liveness_endpoint: str | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or forever)."""
    registry = build_registry(ctx)
    namespaces = list(ctx.settings.watch_namespaces)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=liveness_endpoint,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    )
