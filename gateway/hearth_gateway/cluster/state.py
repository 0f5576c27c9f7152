"""What the gateway knows about the cluster: objects by kind, with lookup indexes.

Pure data, no I/O: the informers (``informer.py``) write into it from list+watch, and the
routing and auth code reads it; tests build one from plain object lists. Every query a
request makes is a dict lookup, never a scan of a whole kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hearth_operator.constants import LABEL_DEPLOYMENT, api_key_secret_name
from hearth_operator.planning.common import resolve_ref

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, or "" for cluster-scoped; name)
IndexFn = Callable[[Obj], Iterable[str]]


def key_of(obj: Obj) -> Key:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace") or "", metadata.get("name") or "")


@dataclass
class Store:
    """Objects of one kind by (namespace, name), plus secondary indexes."""

    indexers: dict[str, IndexFn] = field(default_factory=dict)
    objects: dict[Key, Obj] = field(default_factory=dict)
    _index: dict[str, dict[str, dict[Key, Obj]]] = field(default_factory=dict)
    _entries: dict[Key, dict[str, list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {name: {} for name in self.indexers}

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.objects.get((namespace, name))

    def by_index(self, index: str, value: str) -> list[Obj]:
        return list(self._index[index].get(value, {}).values())

    def __len__(self) -> int:
        return len(self.objects)

    def upsert(self, obj: Obj) -> None:
        key = key_of(obj)
        self._unindex(key)
        self.objects[key] = obj
        entries: dict[str, list[str]] = {}
        for name, function in self.indexers.items():
            try:
                values = list(function(obj))
            except (ValueError, KeyError, TypeError, AttributeError):
                values = []  # a malformed object is stored but found by name only
            entries[name] = values
            for value in values:
                self._index[name].setdefault(value, {})[key] = obj
        self._entries[key] = entries

    def delete(self, obj: Obj) -> None:
        key = key_of(obj)
        self._unindex(key)
        self.objects.pop(key, None)

    def replace(self, objects: Iterable[Obj]) -> None:
        """A fresh list: what is not in it is gone."""
        self.objects.clear()
        self._entries.clear()
        self._index = {name: {} for name in self.indexers}
        for obj in objects:
            self.upsert(obj)

    def _unindex(self, key: Key) -> None:
        for name, values in self._entries.pop(key, {}).items():
            for value in values:
                bucket = self._index[name].get(value)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del self._index[name][value]


def _dm_model(dm: Obj) -> list[str]:
    ref = resolve_ref((dm.get("spec") or {})["model"], "models", dm["metadata"]["namespace"])
    return [f"{ref.namespace}/{ref.name}"]


def _dm_deployment(dm: Obj) -> list[str]:
    ref = resolve_ref(
        (dm.get("spec") or {})["deployment"], "deployments", dm["metadata"]["namespace"]
    )
    return [f"{ref.namespace}/{ref.name}"]


def _pod_deployment(pod: Obj) -> list[str]:
    deployment = (pod["metadata"].get("labels") or {}).get(LABEL_DEPLOYMENT)
    return [f"{pod['metadata']['namespace']}/{deployment}"] if deployment else []


def _api_key_prefix(key: Obj) -> list[str]:
    prefix = (key.get("status") or {}).get("prefix")
    return [prefix] if prefix else []


def _namespace(obj: Obj) -> list[str]:
    return [obj["metadata"]["namespace"]]


#: The kinds the gateway caches, each with its indexes.
KINDS: tuple[str, ...] = (
    "Account",
    "User",
    "ApiKey",
    "Model",
    "Deployment",
    "DeployedModel",
    "Pod",
    "Secret",
)


@dataclass
class ClusterState:
    """Every kind the gateway routes and authenticates with."""

    accounts: Store = field(default_factory=Store)
    users: Store = field(default_factory=Store)
    api_keys: Store = field(default_factory=lambda: Store({"prefix": _api_key_prefix}))
    models: Store = field(default_factory=Store)
    deployments: Store = field(default_factory=Store)
    deployed_models: Store = field(
        default_factory=lambda: Store(
            {"model": _dm_model, "deployment": _dm_deployment, "namespace": _namespace}
        )
    )
    pods: Store = field(default_factory=lambda: Store({"deployment": _pod_deployment}))
    #: Only the Deployments' server API-token Secrets.
    secrets: Store = field(default_factory=Store)

    def store(self, kind: str) -> Store:
        stores = {
            "Account": self.accounts,
            "User": self.users,
            "ApiKey": self.api_keys,
            "Model": self.models,
            "Deployment": self.deployments,
            "DeployedModel": self.deployed_models,
            "Pod": self.pods,
            "Secret": self.secrets,
        }
        return stores[kind]

    @classmethod
    def of(cls, objects: Iterable[Obj]) -> ClusterState:
        """A state holding ``objects`` (each with its ``kind``), for tests and tools."""
        state = cls()
        for obj in objects:
            state.store(obj["kind"]).upsert(obj)
        return state

    # Queries used per request.
    def account(self, name: str) -> Obj | None:
        return self.accounts.get("", name)

    def user(self, namespace: str, name: str) -> Obj | None:
        return self.users.get(namespace, name)

    def api_keys_with_prefix(self, prefix: str) -> list[Obj]:
        return self.api_keys.by_index("prefix", prefix)

    def model(self, namespace: str, name: str) -> Obj | None:
        return self.models.get(namespace, name)

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self.deployments.get(namespace, name)

    def deployed_model(self, namespace: str, name: str) -> Obj | None:
        return self.deployed_models.get(namespace, name)

    def deployed_models_of_model(self, namespace: str, model: str) -> list[Obj]:
        return self.deployed_models.by_index("model", f"{namespace}/{model}")

    def deployed_models_on(self, namespace: str, deployment: str) -> list[Obj]:
        return self.deployed_models.by_index("deployment", f"{namespace}/{deployment}")

    def deployed_models_in(self, namespace: str) -> list[Obj]:
        return self.deployed_models.by_index("namespace", namespace)

    def all_deployed_models(self) -> list[Obj]:
        return list(self.deployed_models.objects.values())

    def pods_of(self, namespace: str, deployment: str) -> list[Obj]:
        return self.pods.by_index("deployment", f"{namespace}/{deployment}")

    def api_token_secret(self, namespace: str, deployment: str) -> Obj | None:
        return self.secrets.get(namespace, api_key_secret_name(deployment))
