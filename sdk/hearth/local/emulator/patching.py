"""The three patch formats the API server accepts for JSON objects.

* JSON merge patch (RFC 7386), `application/merge-patch+json`: kopf uses it for
  all its own writes; `null` deletes a key, lists are replaced as a whole.
* JSON patch (RFC 6902), `application/json-patch+json`: kopf uses it with a
  `test` of `/metadata/resourceVersion` for finalizers (optimistic concurrency);
  a failed `test` is a 422, which kopf handles by retrying on the next cycle.
* Strategic merge patch, `application/strategic-merge-patch+json`: what the
  official client sends for a dict body on built-in kinds. Real servers derive
  merge keys from the Go types' struct tags; here the few lists an operator
  patches are listed by field name in :data:`MERGE_KEYS`. Custom resources reject
  it with 415, exactly like the real server.
"""

from __future__ import annotations

import copy
from typing import Any

from hearth.local.emulator.errors import ApiError, bad_request, unsupported_media_type

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Field name -> merge key, from the `patchMergeKey` struct tags of the core/v1 and meta/v1
# types. Lists not named here are replaced as a whole, as `patchStrategy` is absent for them.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
# Lists of scalars with `patchStrategy:"merge"`: the patch's items are added (a union).
PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [_unescape(token) for token in path[1:].split("/")]


def _invalid_patch(message: str) -> ApiError:
    # The API server reports unappliable JSON patches (including failed `test` ops) as 422.
    return ApiError(422, "Invalid", message)


def _resolve_parent(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            raise _invalid_patch(f"jsonpatch: path not found: /{'/'.join(tokens)}")
    return current, tokens[-1]


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _resolve_parent(doc, tokens)
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _invalid_patch(f"jsonpatch: path not found: {path}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _invalid_patch(f"jsonpatch: index out of range: {path}")
    else:
        raise _invalid_patch(f"jsonpatch: cannot add to a scalar at {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _invalid_patch("jsonpatch: cannot remove the whole document")
    parent, last = _resolve_parent(doc, tokens)
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _invalid_patch(f"jsonpatch: path not found: {path}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902; the whole patch fails (nothing is applied) if any operation fails."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            doc = _remove(doc, path) if _pointer(path) else doc
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            value = _get(doc, op["from"])
            doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise _invalid_patch(
                    f"the server rejected our request due to an error in our "
                    f"request: testing value at {path} failed"
                )
        else:
            raise bad_request(f"unknown json patch operation: {kind!r}")
    return doc


def _merge_key_for(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # container ports merge by containerPort, service ports by port
        sample = next((item for item in items if isinstance(item, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def _strategic_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key_for(field, patch + target)
    if field in PRIMITIVE_MERGE_LISTS:
        return list(target) + [item for item in patch if item not in target]
    if key is None:
        return copy.deepcopy(patch)
    result = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"strategic merge patch: list {field!r} items need {key!r}")
        directive = item.get("$patch")
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if directive == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch with the directives clients send: `$patch`,
    `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` (order is ignored)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field, []) if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _strategic_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = [
                strategic_merge_patch({}, item) if isinstance(item, dict) else item
                for item in value
                if not (isinstance(item, dict) and item.get("$patch") == "delete")
            ]
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def apply_patch(
    target: dict[str, Any], patch: Any, content_type: str, *, custom: bool
) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    if media == MERGE_PATCH:
        result = merge_patch(target, patch)
    elif media == JSON_PATCH:
        result = json_patch(target, patch)
    elif media == STRATEGIC_MERGE_PATCH and not custom:
        result = strategic_merge_patch(target, patch)
    else:
        # Custom resources have no Go types to derive merge keys from: the real server
        # refuses strategic merge patches for them with the same 415.
        raise unsupported_media_type(media)
    if not isinstance(result, dict):
        raise _invalid_patch("the patch must produce an object")
    return result
