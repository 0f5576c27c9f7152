"""``hearthctl``: the command line for Hearth users, Hearth's ``firectl``.

Offline commands (no gateway needed): ``validate``, ``name``, ``crds``
(:mod:`hearth.cli.offline`). Commands against a gateway's control plane
(``/v1/accounts/<account>/...``), one module per resource: ``create|get|list|update|
delete`` of ``model``, ``deployment``, ``deployed-model`` (``load-lora`` / ``unload-lora``),
``dataset``, ``sftj``, ``user``, ``api-key``; ``scale deployment``; ``cancel|resume sftj``;
``download model|dataset``;
``login`` and ``whoami`` for profiles. Both firectl grammars work: ``hearthctl create
deployment ...`` and ``hearthctl deployment create ...``. See docs/hearthctl.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..local import cli as local
from . import (
    api_keys,
    datasets,
    deployed_models,
    deployments,
    downloads,
    login,
    models,
    offline,
    sft_jobs,
    users,
)
from .common import VERBS, Verbs, global_options

__all__ = ["build_parser", "main"]

_RESOURCES = (
    models,
    deployments,
    deployed_models,
    datasets,
    sft_jobs,
    users,
    api_keys,
    downloads,
)
_LORA_VERBS = ("load-lora", "unload-lora")


def _build() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = argparse.ArgumentParser(
        prog="hearthctl",
        description="Hearth command line: manage models, deployments, LoRAs, datasets, "
        "fine-tuning jobs, users and API keys through a Hearth gateway; validate manifests "
        "offline.",
        parents=[global_options(suppress=False)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    offline.register(commands)
    login.register(commands)
    local.register(commands)  # hearthctl local up|down|status (hearth.local.cli)
    verbs = Verbs(commands)
    for resource in _RESOURCES:
        resource.register(verbs)
    return parser, verbs.noun_spellings


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


def verb_first(argv: Sequence[str], nouns: dict[str, str]) -> list[str]:
    """Accept firectl's noun-verb grammar too: ``deployment create X`` -> ``create
    deployment X``; ``model load-lora X`` -> ``load-lora X``."""
    args = list(argv)
    if len(args) >= 2 and args[0] in nouns:
        if args[1] in VERBS:
            return [args[1], args[0], *args[2:]]
        if args[1] in _LORA_VERBS:
            return args[1:]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    parser, nouns = _build()
    args = parser.parse_args(verb_first(sys.argv[1:] if argv is None else argv, nouns))
    return int(args.handler(args))
