"""List semantics of Fireworks' API (pure): pages, filters, ordering and field masks.

- ``pageSize``: default 50, values above 200 are coerced to 200, below 0 refused.
- ``pageToken``: opaque; it encodes the offset and a digest of the other parameters, so a
  token is refused (400) when it was not issued here or the filter/order changed.
- ``filter``: the AIP-160 subset Fireworks documents: ``field = value`` (also ``!=``)
  joined by ``AND``; values quoted (``"x"``) or bare (``true``, ``READY``, ``3``). Field
  names in camelCase or snake_case, from each resource's list of filterable fields.
- ``orderBy``: ``field [desc], ...`` over the same fields plus name and the times.
- ``readMask``: comma-separated top-level fields (``*`` or empty: all).
- ``updateMask``: comma-separated fields that an update changes.

Every refusal is an :class:`~.errors.ApiError` 400 naming the parameter and the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import invalid

Json = dict[str, Any]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: Fields every resource can be ordered by.
ALWAYS_ORDERABLE = ("name", "createTime", "updateTime")


def camel(field: str) -> str:
    """``supports_serverless`` -> ``supportsServerless``; camelCase stays as it is."""
    head, *rest = field.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_path(path: str) -> str:
    return ".".join(camel(part) for part in path.split("."))


# ---------------------------------------------------------------------------- pages


def page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise invalid(f"pageSize: must be an integer, got {raw!r}") from None
    if size < 0:
        raise invalid(f"pageSize: must not be negative, got {size}")
    if size == 0:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def _digest(params: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(params).encode()).hexdigest()[:16]


def encode_token(offset: int, params: Sequence[str]) -> str:
    raw = json.dumps({"o": offset, "p": _digest(params)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, params: Sequence[str]) -> int:
    """The offset a ``pageToken`` stands for (0 without one); 400 for a bad token."""
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, digest = value["o"], value["p"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise invalid("pageToken: not a page token this API issued") from None
    if not isinstance(offset, int) or offset < 0 or not isinstance(digest, str):
        raise invalid("pageToken: not a page token this API issued")
    if digest != _digest(params):
        raise invalid(
            "pageToken: the other list parameters (filter, orderBy, readMask, ...) must match "
            "the call that returned the token"
        )
    return offset


@dataclass(frozen=True)
class Page:
    items: list[Json]
    next_page_token: str
    total_size: int


def paginate(items: list[Json], size: int, token: str | None, params: Sequence[str]) -> Page:
    offset = decode_token(token, params)
    chunk = items[offset : offset + size]
    following = offset + size
    next_token = encode_token(following, params) if following < len(items) else ""
    return Page(chunk, next_token, len(items))


# ---------------------------------------------------------------------------- filter


@dataclass(frozen=True)
class Condition:
    field: str
    value: str
    negated: bool = False


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>!=|=)
      | (?P<word>[A-Za-z0-9_.:/#@+-]+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            snippet = text[position:].strip()[:20]
            raise invalid(f"filter: unexpected text at {snippet!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = json.loads(value)
        tokens.append((kind, value))
        position = match.end()
    return tokens


def parse_filter(text: str | None, fields: Iterable[str]) -> list[Condition]:
    """Conditions of ``field = value [AND ...]``; 400 naming what is wrong."""
    if not text or not text.strip():
        return []
    allowed = set(fields)
    tokens = _tokens(text)
    conditions: list[Condition] = []
    index = 0
    while True:
        if len(tokens) - index < 3:
            raise invalid(
                f"filter: expected 'field = value' at the end of {text!r} "
                "(supported: = and != joined by AND)"
            )
        (k1, field), (k2, op), (k3, value) = tokens[index : index + 3]
        if k1 != "word":
            raise invalid(f"filter: expected a field name, got {field!r}")
        if k2 != "op":
            raise invalid(
                f"filter: expected '=' or '!=' after {field!r}, got {op!r} "
                "(only equality and AND are supported)"
            )
        if k3 not in ("word", "string"):
            raise invalid(f"filter: expected a value after {field}{op}")
        name = camel_path(field)
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise invalid(f"filter: field {field!r} cannot be filtered on; filterable: {known}")
        conditions.append(Condition(name, value, negated=op == "!="))
        index += 3
        if index == len(tokens):
            return conditions
        kind, word = tokens[index]
        if kind != "word" or word != "AND":
            raise invalid(
                f"filter: expected AND, got {word!r} (OR, NOT, :, < and > are not supported)"
            )
        index += 1


def _lookup(item: Json, path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def matches(item: Json, conditions: Iterable[Condition]) -> bool:
    for condition in conditions:
        equal = _as_text(_lookup(item, condition.field)) == condition.value
        if equal == condition.negated:
            return False
    return True


# ---------------------------------------------------------------------------- order


def parse_order_by(text: str | None, fields: Iterable[str]) -> list[tuple[str, bool]]:
    """[(field, descending)]; 400 for unknown fields or directions."""
    if not text or not text.strip():
        return []
    allowed = set(fields) | set(ALWAYS_ORDERABLE)
    order: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise invalid(f"orderBy: {part.strip()!r} is not 'field' or 'field desc'")
        name = camel_path(words[0])
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise invalid(f"orderBy: field {words[0]!r} cannot be ordered by; orderable: {known}")
        order.append((name, len(words) == 2 and words[1] == "desc"))
    return order


def sort_items(items: list[Json], order: list[tuple[str, bool]]) -> list[Json]:
    """Stable sort by each key, the last key first; missing values sort last."""
    result = sorted(items, key=lambda item: _as_text(item.get("name")))
    for field, descending in reversed(order):
        present = [i for i in result if _lookup(i, field) is not None]
        missing = [i for i in result if _lookup(i, field) is None]
        present.sort(key=_sort_key(field), reverse=descending)
        result = present + missing
    return result


def _sort_key(field: str) -> Callable[[Json], Any]:
    def key(item: Json) -> Any:
        value = _lookup(item, field)
        if isinstance(value, bool | int | float):
            return (0, float(value), "")
        return (1, 0.0, _as_text(value))

    return key


# ---------------------------------------------------------------------------- masks


def parse_mask(text: str | None, fields: Iterable[str], parameter: str) -> list[str] | None:
    """The top-level fields a mask names; None for no mask (or ``*``)."""
    if text is None or not text.strip() or text.strip() == "*":
        return None
    allowed = set(fields)
    result: list[str] = []
    for part in text.split(","):
        path = part.strip()
        if not path:
            continue
        top = camel_path(path).split(".")[0]
        if top not in allowed:
            known = ", ".join(sorted(allowed))
            raise invalid(f"{parameter}: unknown field {path!r}; fields: {known}")
        if top not in result:
            result.append(top)
    return result


def apply_read_mask(item: Json, mask: list[str] | None) -> Json:
    if mask is None:
        return item
    return {key: value for key, value in item.items() if key in mask}
