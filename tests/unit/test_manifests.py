"""hearth.manifests: YAML read as kubectl reads it, refusals naming the line."""

import re

import pytest

from hearth.manifests import ManifestError, load_documents


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", 'line 3: mapping key "a" already defined at line 1'),
        ("spec:\n  x: 1\n  y: 2\n  x: 1\n", 'line 4: mapping key "x" already defined at line 2'),
        ("a: 1\n'a': 2\n", 'line 2: mapping key "a" already defined at line 1'),
        ("ok: 1\n---\nb: 1\nc: 2\nb: 3\n", 'line 5: mapping key "b" already defined at line 3'),
        ("x: .nan\n", "line 1: .nan is not a number JSON can hold"),
        ("x:\n  - -.inf\n", "line 2: -.inf is not a number JSON can hold"),
        ("x: !!binary aGk=\n", "line 1: !!binary values have no JSON form"),
        ("x: !!set {a, b}\n", "line 1: !!set values have no JSON form"),
        ("? [1, 2]\n: 3\n", "line 1: a mapping key must be a string, not a list"),
        ("- a\n", "a manifest document must be a mapping, got list"),
        ("kind: List\nitems: {a: 1}\n", "the items of a List must be a list of objects"),
    ],
)
def test_refused_with_the_line(text, message):
    with pytest.raises(ManifestError, match="^" + re.escape(message)):
        load_documents(text)


def test_merge_keys_may_override_without_being_duplicates():
    text = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n"
    assert load_documents(text) == [{"base": {"x": 1, "y": 2}, "derived": {"x": 1, "y": 3}}]


def test_scalars_keep_their_json_meaning():
    text = "day: 2024-01-01\nat: 2024-01-01T10:00:00Z\nn: 3\nf: 1.5\n1: one\ntrue: yes\n"
    assert load_documents(text) == [
        {
            "day": "2024-01-01",
            "at": "2024-01-01T10:00:00Z",
            "n": 3,
            "f": 1.5,
            "1": "one",
            "true": True,
        }
    ]


def test_lists_are_expanded_and_empty_documents_skipped():
    text = "---\n---\nkind: List\nitems:\n  - {kind: A}\n  - {kind: B}\n---\nkind: C\n"
    assert [d["kind"] for d in load_documents(text)] == ["A", "B", "C"]
