"""Pure pieces of the emulator: patches, selectors, quantities, schemas (no server)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from tests.harness.emulator.errors import ApiError
from tests.harness.emulator.patching import json_patch, merge_patch, strategic_merge_patch
from tests.harness.emulator.quota import parse_quantity
from tests.harness.emulator.schema import prune_object, validate
from tests.harness.emulator.selectors import field_matcher, label_matcher

pytestmark = pytest.mark.timeout(5)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1, "b": {"c": 2}}, {"b": {"d": 3}}, {"a": 1, "b": {"c": 2, "d": 3}}),
        ({"a": 1, "b": 2}, {"a": None}, {"b": 2}),
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
        ({"a": {"b": 1}}, {"a": "x"}, {"a": "x"}),
    ],
)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_json_patch_operations_and_atomicity() -> None:
    doc = {"a": {"b": [1, 2]}, "k": "v"}
    assert json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/k", "value": "w"},
            {"op": "move", "from": "/k", "path": "/m"},
            {"op": "copy", "from": "/m", "path": "/n"},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "add", "path": "/x~1y", "value": 1},
        ],
    ) == {"a": {"b": [2, 3]}, "m": "w", "n": "w", "x/y": 1}
    with pytest.raises(ApiError) as exc:
        json_patch(doc, [{"op": "remove", "path": "/k"}, {"op": "test", "path": "/a", "value": 0}])
    assert exc.value.code == 422
    assert doc == {"a": {"b": [1, 2]}, "k": "v"}  # untouched


def test_strategic_merge_patch_keys_and_directives() -> None:
    target = {
        "metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                }
            ],
            "tolerations": [{"key": "t"}],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}],
                }
            ],
            "tolerations": [{"key": "u"}],
        },
    }
    result = strategic_merge_patch(target, patch)
    assert result["metadata"]["finalizers"] == ["b"]
    assert result["metadata"]["ownerReferences"] == [{"uid": "1", "name": "x"}]
    assert result["spec"]["containers"] == [
        {
            "name": "c",
            "image": "i",
            "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}],
        }
    ]
    assert result["spec"]["tolerations"] == [{"key": "u"}]  # no merge key: replaced


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {}, False),
        ("a!=b", {}, True),
        ("a in (x, y),c", {"a": "y", "c": ""}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("!a", {"b": "1"}, True),
        ("n>3", {"n": "4"}, True),
        ("n<3", {"n": "4"}, False),
        ("", {"any": "thing"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert label_matcher(selector)({"metadata": {"labels": labels}}) is matches


def test_bad_label_selector_is_400() -> None:
    with pytest.raises(ApiError) as exc:
        label_matcher("a in x")
    assert exc.value.code == 400


def test_field_selectors() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert field_matcher("metadata.name=p,metadata.namespace==ns")(pod)
    assert field_matcher("status.phase!=Pending")(pod)
    assert not field_matcher("spec.nodeName=n1")(pod)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("1Gi", Fraction(2**30)),
        ("2k", Fraction(2000)),
        ("1e3", Fraction(1000)),
        ("0.5", Fraction(1, 2)),
    ],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["n"],
            "properties": {
                "n": {"type": "integer", "minimum": 1, "exclusiveMinimum": True},
                "d": {"type": "string", "default": "x"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "opt": {"type": "string", "nullable": True},
            },
        }
    },
}


def test_schema_prune_default_validate() -> None:
    obj = {
        "apiVersion": "g/v1",
        "kind": "K",
        "metadata": {"name": "x"},
        "spec": {"n": 2, "junk": 1, "free": {"any": 1}, "opt": None},
        "extra": 1,
    }
    pruned = prune_object(SCHEMA, obj)
    assert pruned == {
        "apiVersion": "g/v1",
        "kind": "K",
        "metadata": {"name": "x"},
        "spec": {"n": 2, "d": "x", "free": {"any": 1}, "opt": None},
    }
    assert validate(SCHEMA, pruned) == []
    assert [field for field, _ in validate(SCHEMA, {"spec": {"n": 1}})] == ["spec.n"]
    assert validate(SCHEMA, {"spec": {}}) == [("spec.n", "Required value")]
