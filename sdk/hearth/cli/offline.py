"""``hearthctl`` commands that need no gateway or cluster:

* ``hearthctl validate PATH...``: check manifests against Hearth's CRDs and CEL rules,
  offline, with the API server's wording. Exit status 1 when anything is invalid.
  ``--old FILE`` checks each object as an update of the object with the same kind,
  namespace and name in FILE, so the update rules (immutable fields, a cancelled job
  staying cancelled) run too: ``kubectl get finetuningjob j -o yaml | hearthctl validate
  --old - job.yaml``.
* ``hearthctl name NAME``: show which Kubernetes object a Fireworks name (or an
  inference-time model string) refers to.
* ``hearthctl crds``: print the CRDs, e.g. ``hearthctl crds | kubectl apply -f -``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from .. import names
from ..manifests import ManifestError, load_documents

#: (API group, kind, namespace, name): what makes two manifests the same object.
Identity = tuple[str, str, str, str]


def _manifest_files(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            yield path


def _identity(document: dict[str, Any]) -> Identity:
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    group = str(document.get("apiVersion", "")).rpartition("/")[0]
    return (
        group,
        str(document.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def _read_manifests(path: Path | None) -> list[dict[str, Any]]:
    """The documents of a file (``None``: standard input)."""
    return load_documents(sys.stdin.read() if path is None else path.read_text())


class OldObjects:
    """The objects of ``--old``, found by identity; a manifest without a namespace matches
    the one object of its kind and name whatever its namespace (``kubectl get`` fills it)."""

    def __init__(self, source: str, documents: list[dict[str, Any]]) -> None:
        self.source = source
        self._by_identity = {_identity(document): document for document in documents}

    def find(self, document: dict[str, Any]) -> dict[str, Any] | None:
        identity = _identity(document)
        if identity in self._by_identity:
            return self._by_identity[identity]
        group, kind, namespace, name = identity
        candidates = [
            old
            for (g, k, ns, n), old in self._by_identity.items()
            if (g, k, n) == (group, kind, name) and "" in (ns, namespace)
        ]
        return candidates[0] if len(candidates) == 1 else None


def _load_old(raw: str) -> OldObjects:
    """Raises OSError, yaml.YAMLError or ValueError (ManifestError) when unreadable."""
    if raw == "-":
        return OldObjects("standard input", _read_manifests(None))
    documents: list[dict[str, Any]] = []
    for path in _manifest_files([raw]):
        documents += _read_manifests(path)
    return OldObjects(raw, documents)


def _validate(args: argparse.Namespace) -> int:
    # Imported here: the validator (CEL, JSON schema) is slow to load, and commands that
    # talk to a gateway should not pay for it.
    from ..validation import UnknownKindError, Validator, default_validator

    validator = Validator.from_directory(Path(args.crds)) if args.crds else default_validator()
    old_objects: OldObjects | None = None
    if args.old is not None:
        try:
            old_objects = _load_old(args.old)
        except (OSError, yaml.YAMLError, ManifestError) as error:
            print(f"{args.old}: cannot read the old objects: {error}", file=sys.stderr)
            return 1
    failures = 0
    for path in _manifest_files(args.paths):
        try:
            documents = _read_manifests(path)
        except (OSError, yaml.YAMLError, ManifestError) as error:
            print(f"{path}: cannot read manifests: {error}", file=sys.stderr)
            failures += 1
            continue
        for document in documents:
            old = old_objects.find(document) if old_objects is not None else None
            try:
                result = validator.validate(document, old)
            except UnknownKindError as error:
                if args.ignore_unknown_kinds:
                    continue
                print(f"{path}: {error}", file=sys.stderr)
                failures += 1
                continue
            if result.ok:
                if not args.quiet:
                    print(
                        f"{path}: {result.kind}/{result.name} is valid{_as_what(old_objects, old)}"
                    )
            else:
                failures += 1
                print(f"{path}: {result.describe()}", file=sys.stderr)
    return 1 if failures else 0


def _as_what(old_objects: OldObjects | None, old: dict[str, Any] | None) -> str:
    """How an object was checked, when ``--old`` was given."""
    if old_objects is None:
        return ""
    if old is None:
        return f" as a create (not in {old_objects.source})"
    return f" as an update of {old_objects.source}"


def _name(args: argparse.Namespace) -> int:
    value: str = args.name
    described: dict[str, object]
    try:
        if "#" in value or "/deployedModels/" in value:
            reference = names.parse_model_reference(value)
            parts = {
                "model": reference.model,
                "deployment": reference.deployment,
                "deployedModel": reference.deployed_model,
            }
            described = {key: _describe(name) for key, name in parts.items() if name is not None}
        else:
            described = dict(_describe(names.parse(value)))
    except ValueError as error:
        print(f"hearthctl: {error}", file=sys.stderr)
        return 2
    print(json.dumps(described, indent=2))
    return 0


def _describe(name: names.ResourceName) -> dict[str, str | None]:
    return {
        "name": str(name),
        "account": name.account,
        "collection": name.collection,
        "id": name.id,
        "kind": name.kind,
        "namespace": name.namespace,
        "objectName": name.name,
    }


def _crds(args: argparse.Namespace) -> int:
    from ..crd import build_crds, render

    sys.stdout.write("---\n".join(render(crd) for crd in build_crds()))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser("validate", help="check manifests against Hearth's CRDs")
    validate.add_argument("paths", nargs="+", help="YAML files or directories")
    validate.add_argument("--crds", help="validate against CRD files in this directory instead")
    validate.add_argument(
        "--ignore-unknown-kinds", action="store_true", help="skip objects that are not Hearth's"
    )
    validate.add_argument(
        "--old",
        metavar="FILE",
        help="check each object as an update of the same object (kind, namespace, name) in "
        "FILE, e.g. `kubectl get ... -o yaml` output, so update rules run too; '-' reads stdin; "
        "objects not in FILE are checked as creates",
    )
    validate.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    validate.set_defaults(handler=_validate)

    name = commands.add_parser("name", help="show the Kubernetes object behind a resource name")
    name.add_argument("name", help="e.g. accounts/acme/models/m or a/m#a/d")
    name.set_defaults(handler=_name)

    crds = commands.add_parser("crds", help="print the CustomResourceDefinitions")
    crds.set_defaults(handler=_crds)
