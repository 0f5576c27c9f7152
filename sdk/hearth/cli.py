"""``hearthctl``: the command line for Hearth users (firectl's counterpart).

Commands that need no cluster:

* ``hearthctl validate PATH...``: check manifests against Hearth's CRDs and CEL rules,
  offline, with the API server's wording. Exit status 1 when anything is invalid.
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

import yaml

from . import names
from .crd import build_crds, render
from .validation import UnknownKindError, Validator, default_validator, load_documents


def _manifest_files(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            yield path


def _validate(args: argparse.Namespace) -> int:
    validator = Validator.from_directory(Path(args.crds)) if args.crds else default_validator()
    failures = 0
    for path in _manifest_files(args.paths):
        try:
            documents = load_documents(path.read_text())
        except (OSError, yaml.YAMLError, ValueError) as error:
            print(f"{path}: cannot read manifests: {error}", file=sys.stderr)
            failures += 1
            continue
        for document in documents:
            try:
                result = validator.validate(document)
            except UnknownKindError as error:
                if args.ignore_unknown_kinds:
                    continue
                print(f"{path}: {error}", file=sys.stderr)
                failures += 1
                continue
            if result.ok:
                if not args.quiet:
                    print(f"{path}: {result.kind}/{result.name} is valid")
            else:
                failures += 1
                print(f"{path}: {result.describe()}", file=sys.stderr)
    return 1 if failures else 0


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
    sys.stdout.write("---\n".join(render(crd) for crd in build_crds()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearthctl", description="Hearth command line (no cluster needed for these)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check manifests against Hearth's CRDs")
    validate.add_argument("paths", nargs="+", help="YAML files or directories")
    validate.add_argument("--crds", help="validate against CRD files in this directory instead")
    validate.add_argument(
        "--ignore-unknown-kinds", action="store_true", help="skip objects that are not Hearth's"
    )
    validate.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    validate.set_defaults(handler=_validate)

    name = commands.add_parser("name", help="show the Kubernetes object behind a resource name")
    name.add_argument("name", help="e.g. accounts/acme/models/m or a/m#a/d")
    name.set_defaults(handler=_name)

    crds = commands.add_parser("crds", help="print the CustomResourceDefinitions")
    crds.set_defaults(handler=_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    return int(handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
