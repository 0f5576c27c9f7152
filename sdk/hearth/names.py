"""Fireworks-style resource names and their Kubernetes objects.

Every Hearth resource has a Fireworks name (``accounts/<a>/models/<m>``) and is stored as
one Kubernetes object. This module is the single place that knows the grammar of those
names, the ID rule, and how a name maps to ``(kind, namespace, name)``:

* ``accounts/<a>`` is the cluster-scoped ``Account`` ``<a>``; it owns namespace ``<a>``.
* ``accounts/<a>/<collection>/<id>`` is the object ``<id>`` of the collection's kind in
  namespace ``<a>``.

It also parses the ``model`` strings clients send at inference time.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "COLLECTION_KINDS",
    "DEFAULT_OPERATOR_NAMESPACE",
    "ID_MAX_LENGTH",
    "KIND_COLLECTIONS",
    "InvalidNameError",
    "ModelReference",
    "ResourceName",
    "format_name",
    "parse",
    "parse_model_reference",
    "reserved_namespaces",
    "validate_account_id",
    "validate_id",
]

ID_MAX_LENGTH: Final = 63
DEFAULT_OPERATOR_NAMESPACE: Final = "hearth-system"
OPERATOR_NAMESPACE_ENV: Final = "HEARTH_OPERATOR_NAMESPACE"

#: Fireworks collection name -> Kubernetes kind (all namespaced in the account's namespace).
COLLECTION_KINDS: Final[dict[str, str]] = {
    "users": "User",
    "models": "Model",
    "deployments": "Deployment",
    "deployedModels": "DeployedModel",
    "datasets": "Dataset",
    "supervisedFineTuningJobs": "FineTuningJob",
}
KIND_COLLECTIONS: Final[dict[str, str]] = {kind: c for c, kind in COLLECTION_KINDS.items()}

ACCOUNTS: Final = "accounts"
_ALLOWED_CHARS = re.compile(r"[a-z0-9-]")


class InvalidNameError(ValueError):
    """A resource ID or name breaks the naming rules; the message names the rule."""


def validate_id(value: str, *, what: str = "resource ID") -> None:
    """Check the Fireworks ID rule, which is also a valid Kubernetes object name.

    1-63 characters of ``a-z``, ``0-9`` and ``-``, not starting or ending with ``-``, not
    starting with a digit. Raises :class:`InvalidNameError` naming the first broken rule.
    """
    if not isinstance(value, str):
        raise InvalidNameError(f"{what} must be a string, got {type(value).__name__}")
    shown = value if len(value) <= 80 else value[:77] + "..."
    if not value:
        raise InvalidNameError(f"{what} must not be empty (IDs are 1-{ID_MAX_LENGTH} characters)")
    if len(value) > ID_MAX_LENGTH:
        raise InvalidNameError(
            f"{what} {shown!r} is {len(value)} characters long; "
            f"IDs are at most {ID_MAX_LENGTH} characters"
        )
    for position, char in enumerate(value):
        if not _ALLOWED_CHARS.fullmatch(char):
            hint = " (IDs are lowercase)" if char.isupper() else ""
            raise InvalidNameError(
                f"{what} {shown!r} contains {char!r} at position {position}; IDs may contain "
                f"only lowercase letters a-z, digits 0-9 and '-'{hint}"
            )
    if value.startswith("-"):
        raise InvalidNameError(f"{what} {shown!r} must not start with '-'")
    if value.endswith("-"):
        raise InvalidNameError(f"{what} {shown!r} must not end with '-'")
    if value[0].isdigit():
        raise InvalidNameError(f"{what} {shown!r} must not start with a digit")


def _operator_namespace(operator_namespace: str | None) -> str:
    if operator_namespace:
        return operator_namespace
    return os.environ.get(OPERATOR_NAMESPACE_ENV) or DEFAULT_OPERATOR_NAMESPACE


def reserved_namespaces(operator_namespace: str | None = None) -> tuple[str, ...]:
    """Exact namespace names no account may take (``kube-*`` is refused as a prefix)."""
    return ("default", _operator_namespace(operator_namespace))


def validate_account_id(value: str, *, operator_namespace: str | None = None) -> None:
    """Check an account ID: the ID rule, and no collision with a system namespace.

    An account owns the namespace of the same name, so ``default``, anything starting with
    ``kube-`` and the operator's own namespace (``$HEARTH_OPERATOR_NAMESPACE``, default
    ``hearth-system``) are refused.
    """
    validate_id(value, what="account ID")
    if value.startswith("kube-"):
        raise InvalidNameError(
            f"account ID {value!r} is reserved: names starting with 'kube-' are "
            "Kubernetes system namespaces"
        )
    if value in reserved_namespaces(operator_namespace):
        raise InvalidNameError(
            f"account ID {value!r} is reserved: it would take over the system namespace {value!r}"
        )


@dataclass(frozen=True)
class ResourceName:
    """A parsed Fireworks resource name.

    For ``accounts/<a>``, ``collection`` is ``"accounts"`` and ``id`` is ``<a>``.
    """

    account: str
    collection: str
    id: str

    @property
    def kind(self) -> str:
        """The Kubernetes kind (group ``hearth.dev``) this name is stored as."""
        if self.collection == ACCOUNTS:
            return "Account"
        return COLLECTION_KINDS[self.collection]

    @property
    def namespace(self) -> str | None:
        """The Kubernetes namespace of the object; ``None`` for the cluster-scoped Account."""
        return None if self.collection == ACCOUNTS else self.account

    @property
    def name(self) -> str:
        """The Kubernetes object name (``metadata.name``)."""
        return self.id

    def __str__(self) -> str:
        return format_name(self.account, self.collection, self.id)

    @classmethod
    def for_object(cls, kind: str, name: str, namespace: str | None = None) -> ResourceName:
        """The Fireworks name of a Kubernetes object of a Hearth kind."""
        if kind == "Account":
            validate_account_id(name)
            return cls(account=name, collection=ACCOUNTS, id=name)
        if kind not in KIND_COLLECTIONS:
            known = ", ".join(["Account", *KIND_COLLECTIONS])
            raise InvalidNameError(f"unknown kind {kind!r}; expected one of {known}")
        if not namespace:
            raise InvalidNameError(f"a {kind} lives in its account's namespace; none was given")
        validate_account_id(namespace)
        validate_id(name, what=f"{kind} ID")
        return cls(account=namespace, collection=KIND_COLLECTIONS[kind], id=name)


def format_name(account: str, collection: str = ACCOUNTS, id: str | None = None) -> str:
    """Format a resource name; the inverse of :func:`parse`."""
    if collection == ACCOUNTS:
        return f"{ACCOUNTS}/{account}"
    return f"{ACCOUNTS}/{account}/{collection}/{id}"


def parse(name: str, *, operator_namespace: str | None = None) -> ResourceName:
    """Parse ``accounts/<a>`` or ``accounts/<a>/<collection>/<id>``.

    Raises :class:`InvalidNameError` (a ``ValueError``) for any other shape, an unknown
    collection, or an ID that breaks the rules.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"resource name must be a string, got {type(name).__name__}")
    parts = name.split("/")
    if parts[0] != ACCOUNTS or len(parts) not in (2, 4):
        raise InvalidNameError(
            f"resource name {name!r} must look like 'accounts/<account>' or "
            f"'accounts/<account>/<collection>/<id>'"
        )
    account = parts[1]
    validate_account_id(account, operator_namespace=operator_namespace)
    if len(parts) == 2:
        return ResourceName(account=account, collection=ACCOUNTS, id=account)
    collection, resource_id = parts[2], parts[3]
    if collection not in COLLECTION_KINDS:
        known = ", ".join(COLLECTION_KINDS)
        raise InvalidNameError(
            f"resource name {name!r} has unknown collection {collection!r}; expected one of {known}"
        )
    validate_id(resource_id, what=f"{COLLECTION_KINDS[collection]} ID")
    return ResourceName(account=account, collection=collection, id=resource_id)


def _parse_expecting(name: str, collection: str, operator_namespace: str | None) -> ResourceName:
    parsed = parse(name, operator_namespace=operator_namespace)
    if parsed.collection != collection:
        raise InvalidNameError(f"{name!r} names {parsed.collection!r}, expected {collection!r}")
    return parsed


@dataclass(frozen=True)
class ModelReference:
    """What the ``model`` field of an inference request points at.

    Exactly one of two shapes: ``model`` (with an optional ``deployment`` pinning it to one
    deployment), or ``deployed_model``.
    """

    model: ResourceName | None = None
    deployment: ResourceName | None = None
    deployed_model: ResourceName | None = None

    def __str__(self) -> str:
        if self.deployed_model is not None:
            return str(self.deployed_model)
        assert self.model is not None
        if self.deployment is None:
            return str(self.model)
        return f"{self.model}#{self.deployment}"


def _expand_short(part: str, collection: str, whole: str) -> str:
    """``<a>/<id>`` -> ``accounts/<a>/<collection>/<id>``; full names pass through."""
    if part.startswith(f"{ACCOUNTS}/"):
        return part
    pieces = part.split("/")
    if len(pieces) != 2:
        raise InvalidNameError(
            f"model {whole!r}: {part!r} must be 'accounts/<account>/{collection}/<id>' "
            f"or the short form '<account>/<id>'"
        )
    return format_name(pieces[0], collection, pieces[1])


def parse_model_reference(value: str, *, operator_namespace: str | None = None) -> ModelReference:
    """Parse an inference-time model string.

    Accepted: ``accounts/<a>/models/<m>``; ``accounts/<a>/models/<m>#accounts/<a>/deployments/<d>``;
    the short form ``<a>/<m>#<a>/<d>``; ``accounts/<a>/deployedModels/<x>``.
    """
    if not isinstance(value, str) or not value:
        raise InvalidNameError("model must be a non-empty string")
    if "#" in value:
        model_part, _, deployment_part = value.partition("#")
        if "#" in deployment_part:
            raise InvalidNameError(f"model {value!r} may contain at most one '#'")
        model = _parse_expecting(
            _expand_short(model_part, "models", value), "models", operator_namespace
        )
        deployment = _parse_expecting(
            _expand_short(deployment_part, "deployments", value), "deployments", operator_namespace
        )
        return ModelReference(model=model, deployment=deployment)
    parsed = parse(value, operator_namespace=operator_namespace)
    if parsed.collection == "models":
        return ModelReference(model=parsed)
    if parsed.collection == "deployedModels":
        return ModelReference(deployed_model=parsed)
    raise InvalidNameError(
        f"model {value!r} must name a model ('accounts/<a>/models/<m>', optionally "
        f"'#accounts/<a>/deployments/<d>') or a deployed model ('accounts/<a>/deployedModels/<x>')"
    )
