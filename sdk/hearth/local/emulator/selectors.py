"""Label and field selectors, as the API server parses and applies them.

Label selectors support the full string syntax the API accepts: `k=v`, `k==v`,
`k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist), and the
numeric `k>n` / `k<n`. Field selectors support `=`, `==` and `!=` on dotted paths
(`metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase`, ...).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from hearth.local.emulator.errors import bad_request

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>,()]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_CMP_RE = re.compile(r"^\s*([^\s!=<>,()]+)\s*(==|=|!=|>|<)\s*([^\s,()]*)\s*$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # 'in', 'notin', 'exists', '!exists', 'gt', 'lt'
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        if self.op == "notin":
            return self.key not in labels or labels[self.key] not in self.values
        value = labels.get(self.key)
        if value is None:
            return False
        try:
            number, bound = int(value), int(next(iter(self.values)))
        except ValueError:
            return False
        return number > bound if self.op == "gt" else number < bound


def _split_top_level(selector: str) -> list[str]:
    """Split by commas that are not inside `in (...)` parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(selector: str) -> list[Requirement]:
    requirements: list[Requirement] = []
    for part in _split_top_level(selector or ""):
        if match := _CMP_RE.match(part):
            key, op, value = match.groups()
            if op in ("=", "=="):
                requirements.append(Requirement(key, "in", frozenset({value})))
            elif op == "!=":
                requirements.append(Requirement(key, "notin", frozenset({value})))
            else:
                if not value.lstrip("-").isdigit():
                    raise bad_request(
                        f"unable to parse requirement: for {op!r} operator, "
                        f"the value must be an integer: {part!r}"
                    )
                requirements.append(
                    Requirement(key, "gt" if op == ">" else "lt", frozenset({value}))
                )
        elif match := _SET_RE.match(part):
            negated, key, op, values = match.groups()
            if op is not None:
                if negated:
                    raise bad_request(f"unable to parse requirement: {part!r}")
                items = frozenset(v.strip() for v in values.split(",") if v.strip())
                requirements.append(Requirement(key, op, items))
            else:
                requirements.append(Requirement(key, "!exists" if negated else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")
    return requirements


def selector_from_dict(selector: Mapping[str, Any]) -> list[Requirement]:
    """A `metav1.LabelSelector` (matchLabels + matchExpressions) as requirements."""
    requirements = [
        Requirement(k, "in", frozenset({str(v)}))
        for k, v in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        requirements.append(
            Requirement(
                expr["key"], operators[expr["operator"]], frozenset(expr.get("values") or [])
            )
        )
    return requirements


def format_selector(requirements: list[Requirement]) -> str:
    parts: list[str] = []
    for req in requirements:
        if req.op == "exists":
            parts.append(req.key)
        elif req.op == "!exists":
            parts.append(f"!{req.key}")
        elif req.op == "in" and len(req.values) == 1:
            parts.append(f"{req.key}={next(iter(req.values))}")
        else:
            parts.append(f"{req.key} {req.op} ({','.join(sorted(req.values))})")
    return ",".join(parts)


def label_matcher(selector: str | None) -> Matcher:
    requirements = parse_label_selector(selector or "")

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req.matches(labels) for req in requirements)

    return matches


def _lookup(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(key)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_matcher(selector: str | None) -> Matcher:
    checks: list[tuple[str, bool, str]] = []  # (path, must_equal, value)
    for part in _split_top_level(selector or ""):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if match is None:
            raise bad_request(f"invalid field selector: {part!r}")
        path, op, value = match.groups()
        checks.append((path, op != "!=", value))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_lookup(obj, path) == value) == must for path, must, value in checks)

    return matches
