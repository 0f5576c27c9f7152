"""List semantics of the control plane: pages, tokens, filters, ordering, masks."""

from __future__ import annotations

import pytest

from hearth_gateway.control.errors import ApiError
from hearth_gateway.control.listing import (
    Condition,
    apply_read_mask,
    camel,
    decode_token,
    encode_token,
    matches,
    page_size,
    paginate,
    parse_filter,
    parse_mask,
    parse_order_by,
    sort_items,
)

FIELDS = ("state", "baseModel", "public", "displayName")


def items(n: int) -> list[dict]:
    return [{"name": f"accounts/a/models/m{i:03d}", "state": "READY"} for i in range(n)]


def test_page_size_defaults_caps_and_refuses() -> None:
    assert page_size(None) == 50 and page_size("") == 50 and page_size("0") == 50
    assert page_size("7") == 7 and page_size("999") == 200
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(ApiError) as error:
            page_size(bad)
        assert error.value.status == 400 and "pageSize" in error.value.message


def test_pages_cover_every_item_once_and_end_without_a_token() -> None:
    data = items(205)
    seen, token, pages = [], None, 0
    while True:
        page = paginate(data, 50, token, ["", ""])
        assert page.total_size == 205
        seen += [i["name"] for i in page.items]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 5 and seen == [i["name"] for i in data]


def test_a_token_is_refused_when_forged_or_the_filter_changed() -> None:
    token = encode_token(50, ["state = READY", ""])
    assert decode_token(token, ["state = READY", ""]) == 50
    for bad in ("garbage!", "e30", encode_token(-1, ["", ""])):
        with pytest.raises(ApiError, match="pageToken"):
            decode_token(bad, ["", ""])
    with pytest.raises(ApiError, match="must match"):
        decode_token(token, ["state = FAILED", ""])


def test_filter_equality_and_and_in_both_spellings() -> None:
    conditions = parse_filter('state = "READY" AND base_model="accounts/a/models/m"', FIELDS)
    assert conditions == [
        Condition("state", "READY"),
        Condition("baseModel", "accounts/a/models/m"),
    ]
    item = {"state": "READY", "baseModel": "accounts/a/models/m", "public": True}
    assert matches(item, conditions)
    assert not matches({**item, "state": "FAILED"}, conditions)
    assert matches(item, parse_filter("public=true", FIELDS))
    assert matches(item, parse_filter("state != FAILED", FIELDS))
    assert not matches(item, parse_filter("public = false", FIELDS))
    assert parse_filter("  ", FIELDS) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("color = red", "cannot be filtered on"),
        ("state = READY OR state = FAILED", "expected AND"),
        ("state > 3", "unexpected text"),
        ("state =", "expected 'field = value'"),
        ("state READY = x", "expected '=' or '!='"),
        ('state = "READY" AND', "expected 'field = value'"),
    ],
)
def test_bad_filters_are_400_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_filter(text, FIELDS)
    assert error.value.status == 400 and reason in error.value.message
    assert error.value.message.startswith("filter:")


def test_order_by_fields_directions_and_missing_values_last() -> None:
    order = parse_order_by("display_name desc, name", FIELDS)
    assert order == [("displayName", True), ("name", False)]
    data = [
        {"name": "b", "displayName": "x"},
        {"name": "a"},
        {"name": "c", "displayName": "y"},
    ]
    assert [i["name"] for i in sort_items(data, order)] == ["c", "b", "a"]
    assert [i["name"] for i in sort_items(data, [])] == ["a", "b", "c"]
    for bad in ("color", "name sideways", "name desc extra"):
        with pytest.raises(ApiError, match="orderBy"):
            parse_order_by(bad, FIELDS)


def test_masks_name_known_fields_only() -> None:
    assert parse_mask(None, FIELDS, "readMask") is None
    assert parse_mask("*", FIELDS, "readMask") is None
    assert parse_mask("state,display_name", FIELDS, "readMask") == ["state", "displayName"]
    assert apply_read_mask({"state": 1, "public": 2}, ["state"]) == {"state": 1}
    with pytest.raises(ApiError, match="updateMask: unknown field 'colour'"):
        parse_mask("state,colour", FIELDS, "updateMask")
    assert (
        camel("supports_serverless") == "supportsServerless" and camel("baseModel") == "baseModel"
    )
