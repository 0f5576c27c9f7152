"""From a request's ``model`` string to the replicas that can serve it (pure).

Every Fireworks form is accepted (``hearth.names.parse_model_reference``):

* ``accounts/<a>/models/<m>``: the model's default DeployedModel when the caller may use
  it; otherwise the caller's own DeployedModel of it; otherwise a serverless one in the
  platform account;
* ``accounts/<a>/models/<m>#accounts/<b>/deployments/<d>`` (or the short form
  ``<a>/<m>#<b>/<d>``): the model on that deployment;
* ``accounts/<a>/deployedModels/<x>``: that DeployedModel.

A caller may use a DeployedModel of its own account, one marked ``public``, and the
serverless ones of the platform account. Anything else (unknown, another account's
private model, nothing deployed) is the same 404 with Fireworks' text, so a caller learns
nothing about other accounts.

Balancing is least outstanding requests among ready replicas, preferring those with the
adapter loaded; ties are broken at random.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from hearth.api import DeploymentSpec, ModelKind
from hearth.names import (
    InvalidNameError,
    ModelReference,
    ResourceName,
    format_name,
    parse_model_reference,
)
from hearth_operator.constants import LABEL_ADDON, adapter_annotation
from hearth_operator.planning.common import (
    Ref,
    creation_key,
    is_terminating,
    pod_ready,
    resolve_ref,
    restart_count,
)
from hearth_operator.planning.deployment import api_key_from_secret, desired_replicas

from .cluster.state import ClusterState

Obj = dict[str, Any]

NOT_FOUND_MESSAGE = "Model not found, inaccessible, and/or not deployed"
DEFAULT_SERVER_PORT = 8000


class RoutingError(Exception):
    """The model cannot be routed: 404 (not found / not accessible) or 412 (failed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found() -> RoutingError:
    return RoutingError(404, NOT_FOUND_MESSAGE)


@dataclass(frozen=True)
class Replica:
    pod: str
    #: ``ip:port`` of the server.
    address: str
    #: The requested adapter is loaded there (always true for a base model).
    adapter_loaded: bool = True


@dataclass(frozen=True)
class Route:
    #: ``accounts/<a>/deployedModels/<x>``.
    deployed_model: str
    #: The account (namespace) that owns the deployment.
    namespace: str
    deployment_id: str
    #: The name hearth-server knows the model by (base served name or adapter name).
    served_name: str
    serverless: bool
    addon: bool
    #: Ready replicas; for an addon only those with the adapter loaded come first.
    replicas: tuple[Replica, ...]
    #: The token the deployment's servers require (None if its Secret is not cached yet).
    api_token: str | None
    #: Replicas the Deployment asks for now, and its minimum.
    desired_replicas: int
    min_replicas: int

    @property
    def deployment(self) -> str:
        return format_name(self.namespace, "deployments", self.deployment_id)

    @property
    def usable(self) -> tuple[Replica, ...]:
        """Replicas that can answer now: ready, and holding the adapter for an addon."""
        return tuple(r for r in self.replicas if r.adapter_loaded)


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def can_use(dm: Obj, deployment: Obj, caller: str, platform_account: str) -> bool:
    """Fireworks' access rule for a DeployedModel."""
    namespace = dm["metadata"]["namespace"]
    if namespace == caller or _spec(dm).get("public"):
        return True
    return namespace == platform_account and is_serverless(dm, deployment)


def is_serverless(dm: Obj, deployment: Obj | None) -> bool:
    return bool(_spec(dm).get("serverless") or (deployment and _spec(deployment).get("serverless")))


def _deployment_of(dm: Obj, state: ClusterState) -> Obj | None:
    namespace = dm["metadata"]["namespace"]
    try:
        ref = resolve_ref(_spec(dm).get("deployment", ""), "deployments", namespace)
    except ValueError:
        return None
    if ref.namespace != namespace:
        return None
    deployment = state.deployment(ref.namespace, ref.name)
    if deployment is None or is_terminating(deployment):
        return None
    return deployment


def _model_ref(dm: Obj) -> Ref | None:
    try:
        return resolve_ref(_spec(dm).get("model", ""), "models", dm["metadata"]["namespace"])
    except ValueError:
        return None


def _usable_candidates(
    dms: list[Obj], state: ClusterState, caller: str, platform_account: str
) -> list[tuple[Obj, Obj]]:
    found = []
    for dm in sorted(dms, key=creation_key):
        if is_terminating(dm):
            continue
        deployment = _deployment_of(dm, state)
        if deployment is not None and can_use(dm, deployment, caller, platform_account):
            found.append((dm, deployment))
    return found


def _pick_for_model(
    candidates: list[tuple[Obj, Obj]], caller: str, platform_account: str
) -> tuple[Obj, Obj] | None:
    for dm, deployment in candidates:
        if (dm.get("status") or {}).get("default") is True:
            return dm, deployment
    for dm, deployment in candidates:
        if dm["metadata"]["namespace"] == caller:
            return dm, deployment
    for dm, deployment in candidates:
        if dm["metadata"]["namespace"] == platform_account and is_serverless(dm, deployment):
            return dm, deployment
    return None


def find_deployed_model(
    reference: ModelReference, caller: str, state: ClusterState, platform_account: str
) -> tuple[Obj, Obj] | None:
    """The DeployedModel (and its Deployment) a reference means for ``caller``."""
    if reference.deployed_model is not None:
        ref = reference.deployed_model
        dm = state.deployed_model(ref.account, ref.id)
        found = _usable_candidates([dm] if dm else [], state, caller, platform_account)
        return found[0] if found else None
    assert reference.model is not None
    model = reference.model
    if reference.deployment is not None:
        on = reference.deployment
        dms = [
            dm
            for dm in state.deployed_models_on(on.account, on.id)
            if _model_ref(dm) == Ref(model.account, model.id)
        ]
        found = _usable_candidates(dms, state, caller, platform_account)
        return found[0] if found else None
    dms = state.deployed_models_of_model(model.account, model.id)
    return _pick_for_model(
        _usable_candidates(dms, state, caller, platform_account), caller, platform_account
    )


def _is_addon(dm: Obj, model: Obj | None) -> bool:
    if model is not None:
        return bool(_spec(model).get("kind") == ModelKind.HF_PEFT_ADDON.value)
    return (dm["metadata"].get("labels") or {}).get(LABEL_ADDON) == "true"


def server_port(pod: Obj) -> int:
    for container in _spec(pod).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "http" and port.get("containerPort"):
                return int(port["containerPort"])
    return DEFAULT_SERVER_PORT


def adapter_loaded(dm: Obj, pod: Obj) -> bool:
    """Whether the operator loaded the DeployedModel's adapter into this incarnation of
    the pod's server: its annotation names the container's current restart count, or the
    DeployedModel's status lists the pod as LOADED."""
    value = (pod["metadata"].get("annotations") or {}).get(
        adapter_annotation(dm["metadata"]["name"])
    )
    if value is not None and value.rsplit(".", 1)[-1] == str(restart_count(pod)):
        return True
    name = pod["metadata"]["name"]
    return any(
        entry.get("pod") == name and entry.get("state") == "LOADED"
        for entry in (dm.get("status") or {}).get("replicas") or []
    )


def replicas_of(dm: Obj, deployment: Obj, state: ClusterState, addon: bool) -> tuple[Replica, ...]:
    namespace = deployment["metadata"]["namespace"]
    replicas = []
    for pod in state.pods_of(namespace, deployment["metadata"]["name"]):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or not pod_ready(pod):
            continue
        replicas.append(
            Replica(
                pod=pod["metadata"]["name"],
                address=f"{ip}:{server_port(pod)}",
                adapter_loaded=adapter_loaded(dm, pod) if addon else True,
            )
        )
    replicas.sort(key=lambda r: (not r.adapter_loaded, r.pod))
    return tuple(replicas)


def _replica_counts(deployment: Obj) -> tuple[int, int]:
    try:
        spec = DeploymentSpec.model_validate(_spec(deployment))
    except ValueError:
        return 0, 0
    return desired_replicas(spec), spec.min_replica_count


def resolve(model: str, caller: str, state: ClusterState, *, platform_account: str) -> Route:
    """The route for ``model`` as ``caller`` (an account ID) sends it.

    Raises :class:`RoutingError`: 404 with Fireworks' text for anything the caller cannot
    reach; 412 when the DeployedModel failed (e.g. its adapter did not load).
    """
    try:
        reference = parse_model_reference(model)
    except InvalidNameError:
        raise not_found() from None
    found = find_deployed_model(reference, caller, state, platform_account)
    if found is None:
        raise not_found()
    dm, deployment = found
    model_ref = _model_ref(dm)
    if model_ref is None:
        raise not_found()
    dm_status = dm.get("status") or {}
    dm_name = format_name(dm["metadata"]["namespace"], "deployedModels", dm["metadata"]["name"])
    if dm_status.get("state") == "FAILED":
        why = dm_status.get("message") or "it failed to deploy"
        raise RoutingError(412, f"deployed model {dm_name} is not serving: {why}")
    model_obj = state.model(model_ref.namespace, model_ref.name)
    addon = _is_addon(dm, model_obj)
    namespace = deployment["metadata"]["namespace"]
    desired, minimum = _replica_counts(deployment)
    return Route(
        deployed_model=dm_name,
        namespace=namespace,
        deployment_id=deployment["metadata"]["name"],
        served_name=model_ref.full_name("models"),
        serverless=is_serverless(dm, deployment),
        addon=addon,
        replicas=replicas_of(dm, deployment, state, addon),
        api_token=api_key_from_secret(
            state.api_token_secret(namespace, deployment["metadata"]["name"])
        ),
        desired_replicas=desired,
        min_replicas=minimum,
    )


@dataclass(frozen=True)
class Listing:
    """A model the caller can name, for ``/v1/models``."""

    id: str
    owned_by: str
    serverless: bool


def reachable_models(caller: str, state: ClusterState, *, platform_account: str) -> list[Listing]:
    """Every model name the caller can send: each usable DeployedModel by its own name,
    and each model with a usable default (or serverless) DeployedModel by the model name."""
    listings: dict[str, Listing] = {}
    for dm in sorted(state.all_deployed_models(), key=creation_key):
        if is_terminating(dm) or (dm.get("status") or {}).get("state") == "FAILED":
            continue
        deployment = _deployment_of(dm, state)
        if deployment is None or not can_use(dm, deployment, caller, platform_account):
            continue
        namespace = dm["metadata"]["namespace"]
        serverless = is_serverless(dm, deployment)
        dm_name = format_name(namespace, "deployedModels", dm["metadata"]["name"])
        listings[dm_name] = Listing(dm_name, namespace, serverless)
        model_ref = _model_ref(dm)
        if model_ref is None:
            continue
        model_name = model_ref.full_name("models")
        reference = ModelReference(
            model=ResourceName(account=model_ref.namespace, collection="models", id=model_ref.name)
        )
        if model_name not in listings and find_deployed_model(
            reference, caller, state, platform_account
        ):
            listings[model_name] = Listing(model_name, model_ref.namespace, serverless)
    return sorted(listings.values(), key=lambda listing: listing.id)


def choose_replica(
    replicas: Collection[Replica],
    outstanding: Mapping[str, int],
    *,
    exclude: Collection[str] = (),
    rng: random.Random | None = None,
) -> Replica | None:
    """Least outstanding requests (by address), adapter-loaded replicas first, ties at
    random; None when every replica is excluded."""
    candidates = [r for r in replicas if r.pod not in exclude]
    loaded = [r for r in candidates if r.adapter_loaded]
    pool = loaded or candidates
    if not pool:
        return None
    fewest = min(outstanding.get(r.address, 0) for r in pool)
    ties = [r for r in pool if outstanding.get(r.address, 0) == fewest]
    return ties[0] if len(ties) == 1 else (rng or random).choice(ties)
