"""How ``hearthctl`` prints resources: a table (lists), ``Field: value`` lines (one object),
or the API's JSON / YAML unchanged (``-o json|yaml``). Pure functions of the data."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import yaml

from ..client import Json

FORMATS: Final = ("table", "json", "yaml")

Getter = Callable[[Json], object]
Column = tuple[str, Getter]


def field(path: str) -> Getter:
    """A getter for a dotted camelCase path (``status.message``); missing -> ``None``."""
    parts = path.split(".")

    def get(obj: Json) -> object:
        value: object = obj
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get


def short_id(obj: Json) -> str:
    """The last segment of ``name`` (``accounts/a/deployments/d`` -> ``d``)."""
    name = obj.get("name")
    return str(name).rsplit("/", 1)[-1] if name else ""


def cell(value: object) -> str:
    """One value as table text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def table(rows: Iterable[Json], columns: Sequence[Column]) -> str:
    """Rows under upper-case headers, columns padded to their widest cell."""
    headers = [header for header, _ in columns]
    cells = [[cell(get(row)) for _, get in columns] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *cells]
    ]
    return "\n".join(lines) + "\n"


def _flatten(prefix: str, value: object, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out.append((prefix, cell(value)))


def details(obj: Json) -> str:
    """One object as aligned ``field: value`` lines, nested fields dotted."""
    pairs: list[tuple[str, str]] = []
    _flatten("", obj, pairs)
    if not pairs:
        return ""
    width = max(len(key) for key, _ in pairs) + 1
    return "".join(f"{(key + ':').ljust(width)} {value}".rstrip() + "\n" for key, value in pairs)


def dump(data: Any, fmt: str) -> str:
    """The API's JSON (``json``) or the same data as YAML (``yaml``)."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")


def render_one(obj: Json, fmt: str) -> str:
    return details(obj) if fmt == "table" else dump(obj, fmt)


def render_list(items: Sequence[Json], fmt: str, columns: Sequence[Column]) -> str:
    return table(items, columns) if fmt == "table" else dump(list(items), fmt)
