"""ResourceQuota: admission on create, and the controller that reports usage.

The real API server refuses a create that would exceed any ResourceQuota of the
namespace with a 403 (`exceeded quota: ...`), and kube-controller-manager keeps each
quota's `status.hard`/`status.used` current. Both are emulated for what quotas
usually limit: object counts (`pods`, `services`, `count/<plural>[.<group>]`, ...)
and pod compute requests/limits (`requests.cpu`, `limits.memory`,
`requests.nvidia.com/gpu`, bare `cpu`/`memory` meaning requests). Terminal pods
(Succeeded/Failed) do not count, as on a real cluster. Scopes and scope selectors
are not emulated.
"""

from __future__ import annotations

import copy
import re
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from hearth.local.emulator.errors import forbidden
from hearth.local.emulator.resources import POD_GROUP_PLURAL, ResourceType

if TYPE_CHECKING:
    from hearth.local.emulator.store import Store, WatchEvent

QUOTA_GROUP_PLURAL = ("", "resourcequotas")

_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Fraction | int] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_CORE_COUNTS = {
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "resourcequotas",
    "replicationcontrollers",
}
_COMPUTE = {"cpu", "memory", "ephemeral-storage"}


def parse_quantity(value: Any) -> Fraction:
    match = _QUANTITY_RE.match(str(value).strip())
    if match is None:
        raise ValueError(f"invalid quantity {value!r}")
    number, suffix = match.groups()
    base = Fraction(number)
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    if suffix in _DECIMAL:
        return base * _DECIMAL[suffix]
    if suffix[:1] in "eE":
        return (
            base * Fraction(10 ** int(suffix[1:]))
            if int(suffix[1:]) >= 0
            else base / Fraction(10 ** -int(suffix[1:]))
        )
    raise ValueError(f"invalid quantity suffix in {value!r}")


def format_quantity(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{int(value * 1000)}m"


def _pod_amount(pod: dict[str, Any], key: str) -> Fraction:
    """The pod's contribution to a compute key (`requests.cpu`, `limits.memory`, `cpu`...)."""
    kind, _, resource = (
        key.partition(".") if key.startswith(("requests.", "limits.")) else ("requests", "", key)
    )
    total = Fraction(0)
    for container in pod.get("spec", {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get(kind) or {}).get(resource)
        if amount is None and kind == "requests":
            amount = (resources.get("limits") or {}).get(resource)  # requests default to limits
        if amount is not None:
            total += parse_quantity(amount)
    return total


def _count_target(key: str) -> tuple[str, str] | None:
    """The (group, plural) a count key counts: `pods`, `count/deployments.hearth.dev`..."""
    if key in _CORE_COUNTS:
        return ("", key)
    if key.startswith("count/"):
        plural, _, group = key[len("count/") :].partition(".")
        return (group, plural)
    return None


def _is_compute(key: str) -> bool:
    return key.startswith(("requests.", "limits.")) or key in _COMPUTE


def _terminal(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def usage_of(key: str, rtype: ResourceType, obj: dict[str, Any]) -> Fraction:
    """How much one object uses of a quota key (0 if the key does not concern it)."""
    is_pod = rtype.group_plural == POD_GROUP_PLURAL
    if is_pod and _terminal(obj):
        return Fraction(0)
    if _count_target(key) == rtype.group_plural:
        return Fraction(1)
    if is_pod and _is_compute(key):
        return _pod_amount(obj, key)
    return Fraction(0)


def namespace_usage(store: Store, namespace: str, key: str) -> Fraction:
    """What a namespace uses of a key: object counts from the store's index, compute
    resources summed over the namespace's pods that are not terminal."""
    target = _count_target(key)
    if target is not None and target != POD_GROUP_PLURAL:
        return Fraction(store.count_in(namespace, target))
    if target is None and not _is_compute(key):
        return Fraction(0)
    pods = [pod for pod in store.objects_in(namespace, POD_GROUP_PLURAL) if not _terminal(pod)]
    if target == POD_GROUP_PLURAL:
        return Fraction(len(pods))
    return sum((_pod_amount(pod, key) for pod in pods), Fraction(0))


def check_admission(
    store: Store, rtype: ResourceType, obj: dict[str, Any], quotas: list[dict[str, Any]]
) -> None:
    """Raise 403 if creating ``obj`` would exceed any quota of its namespace."""
    namespace = obj["metadata"]["namespace"]
    for quota in quotas:
        for key, hard in (quota.get("spec", {}).get("hard") or {}).items():
            requested = usage_of(key, rtype, obj)
            if not requested:
                continue
            used = namespace_usage(store, namespace, key)
            limit = parse_quantity(hard)
            if used + requested > limit:
                name = obj["metadata"]["name"]
                raise forbidden(
                    f'{rtype.describe()} "{name}" is forbidden: exceeded quota: '
                    f"{quota['metadata']['name']}, requested: {key}={format_quantity(requested)}, "
                    f"used: {key}={format_quantity(used)}, limited: {key}={hard}",
                    name=name,
                    kind=rtype.plural,
                )


def quota_status(store: Store, namespace: str, quota: dict[str, Any]) -> dict[str, Any]:
    hard = dict(quota.get("spec", {}).get("hard") or {})
    used = {key: format_quantity(namespace_usage(store, namespace, key)) for key in hard}
    return {"hard": hard, "used": used}


class QuotaController:
    """Keeps `status` of ResourceQuotas current in the namespaces that changed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dirty: set[str] = set()
        store.listeners.append(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        namespace = event.obj["metadata"].get("namespace")
        if namespace:
            self.dirty.add(namespace)

    def pending(self) -> bool:
        """Whether a changed namespace has quotas to update (others are forgotten)."""
        self.dirty = {ns for ns in self.dirty if self.store.count_in(ns, QUOTA_GROUP_PLURAL)}
        return bool(self.dirty)

    def sweep(self) -> bool:
        changed = False
        rtype = self.store.registry.any_version(*QUOTA_GROUP_PLURAL)
        assert rtype is not None
        while self.dirty:
            namespace = self.dirty.pop()
            for quota in self.store.objects_in(namespace, QUOTA_GROUP_PLURAL):
                status = quota_status(self.store, namespace, quota)
                if quota.get("status") != status:
                    # Stored objects are immutable snapshots: write a deep copy.
                    self.store.commit(rtype, quota, {**copy.deepcopy(quota), "status": status})
                    changed = True
        return changed
