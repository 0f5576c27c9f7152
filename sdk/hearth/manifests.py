"""Read YAML manifests the way ``kubectl`` does: as JSON written in YAML.

PyYAML's safe loader is more permissive than Kubernetes in ways that hide mistakes:
a repeated key silently keeps the last value (``kubectl`` refuses the file), ``2024-01-01``
becomes a date and ``.nan`` a float that JSON cannot carry, and keys need not be strings.
:func:`load_documents` reads with those rules fixed, and every refusal names the line.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

__all__ = ["ManifestError", "load_documents"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class ManifestError(ValueError):
    """A manifest file is not JSON-compatible YAML; the message names the line."""


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader with Kubernetes' reading of YAML (see the module docstring)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *anchor` merges; its keys may be overridden on purpose
            if not isinstance(key_node, ScalarNode):
                raise ManifestError(
                    f"line {_line(key_node)}: a mapping key must be a string, "
                    f"not a {'list' if key_node.id == 'sequence' else 'mapping'}"
                )
            key = key_node.value
            if key in first_line:
                raise ManifestError(
                    f'line {_line(key_node)}: mapping key "{key}" already defined at line '
                    f"{first_line[key]} (a repeated key is an error, as in kubectl)"
                )
            first_line[key] = _line(key_node)
        self.flatten_mapping(node)
        # Keys are JSON strings: `1: x` and `true: x` have the keys "1" and "true".
        return {
            key_node.value: self.construct_object(value_node, deep=deep)
            for key_node, value_node in node.value
        }

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise ManifestError(
                f"line {_line(node)}: {node.value} is not a number JSON can hold "
                "(no NaN or infinity in a manifest)"
            )
        return value

    def construct_timestamp_as_text(self, node: ScalarNode) -> str:
        # Kubernetes keeps 2024-01-01 as the string it is written as.
        return str(self.construct_scalar(node))

    def construct_not_json(self, node: Node) -> Any:
        short = node.tag.rsplit(":", 1)[-1]
        raise ManifestError(f"line {_line(node)}: !!{short} values have no JSON form")


_ManifestLoader.add_constructor("tag:yaml.org,2002:float", _ManifestLoader.construct_yaml_float)
_ManifestLoader.add_constructor(_TIMESTAMP_TAG, _ManifestLoader.construct_timestamp_as_text)
for _tag in ("binary", "set", "omap", "pairs"):
    _ManifestLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _ManifestLoader.construct_not_json)


def load_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a manifest file (``kind: List`` is expanded).

    Raises :class:`ManifestError` (or ``yaml.YAMLError`` for a syntax error), naming the
    line, for anything ``kubectl`` would refuse to read.
    """
    documents = []
    for doc in yaml.load_all(text, Loader=_ManifestLoader):  # a SafeLoader subclass
        if not doc:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"a manifest document must be a mapping, got {type(doc).__name__}")
        if doc.get("kind") == "List":
            items = doc.get("items") or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ManifestError("the items of a List must be a list of objects")
            documents += [item for item in items if item]
        else:
            documents.append(doc)
    return documents
