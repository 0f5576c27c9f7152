"""Property: whatever a manifest holds, the validator answers with field errors.

Starting from the examples, hypothesis writes hostile values (wrong types, integers past 64
bits, durations past Go's range, lone surrogates, odd names) into any field the schema
knows, as a create and as an update in either direction. The validator must never raise,
never blame ``<root>``, and never say a rule could not be evaluated: every refusal names
the field, in words.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearth.validation import default_validator, load_documents, validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    document
    for path in sorted((ROOT / "examples").rglob("*.yaml"))
    for document in load_documents(path.read_text())
    if document["apiVersion"].startswith("hearth.dev/")
]

# The CEL environment raises the recursion limit when created; hypothesis warns if that
# happens inside a test, so it happens here.
validate(EXAMPLES[0])

HOSTILE_SCALARS = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        2**63,
        -(2**63) - 1,
        2**63 - 1,
        1.5,
        1e308,
        "",
        "x",
        "Bad_Name",
        "kube-system",
        "1h",
        "-1h",
        "2562048h",
        "99999999999999999999h",
        "a" * 300,
        "\ud800",
        "accounts/a/models/b",
    ]
)
HOSTILE = st.one_of(
    HOSTILE_SCALARS,
    st.lists(HOSTILE_SCALARS, max_size=2),
    st.dictionaries(st.sampled_from(["a", "default", "\udfff"]), HOSTILE_SCALARS, max_size=2),
    st.text(max_size=8),
    st.integers(),
)


def field_paths(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every property path the schema declares (list items and map values as one)."""
    found = [prefix] if prefix else []
    for name, sub in schema.get("properties", {}).items():
        if prefix or name not in ("apiVersion", "kind"):
            found += field_paths(sub, (*prefix, name))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        found += field_paths(extra, (*prefix, "default"))
    return found


def put(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = document
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    original = draw(st.sampled_from(EXAMPLES))
    schema = default_validator().schema_for(original["apiVersion"], original["kind"])
    paths = field_paths(schema)
    document = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        put(document, draw(st.sampled_from(paths)), draw(HOSTILE))
    return original, document


def assert_answers_in_words(obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    result = validate(obj, old)
    for error in result.errors:
        assert error.path, f"an error without a field: {error}"
        assert "cannot be evaluated" not in error.message, str(error)
        assert "Internal error" not in error.message, str(error)
    result.describe()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_creates_are_answered_field_by_field(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, document = case
    assert_answers_in_words(document)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.booleans())
def test_updates_are_answered_field_by_field(
    case: tuple[dict[str, Any], dict[str, Any]], hostile_old: bool
) -> None:
    original, document = case
    if hostile_old:  # an old object written by hand, updated to the example
        assert_answers_in_words(original, document)
    else:
        assert_answers_in_words(document, original)
