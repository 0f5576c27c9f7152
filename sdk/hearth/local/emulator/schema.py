"""What the API server does with a CRD's `openAPIV3Schema` on every write.

In order, as in the apiextensions server: unknown fields are pruned (unless
`x-kubernetes-preserve-unknown-fields`), nulls of non-nullable fields dropped,
`default`s applied, and the result validated; a violation is a 422 `Invalid` with
one cause per field. kopf's own `status.<handler>` results are pruned like on a
real cluster unless the CRD's status schema preserves unknown fields.

CEL rules (`x-kubernetes-validations`) are not evaluated here; a project validator
can be plugged in through ``KubeEmulator(validators=[...])``.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _is_object_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or "properties" in schema


def prune_and_default(schema: dict[str, Any] | None, value: Any) -> Any:
    """Prune unknown fields, drop non-nullable nulls, and apply defaults (recursively)."""
    if schema is None or (
        schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema
    ):
        return value
    if (isinstance(value, dict) and _is_object_schema(schema)) or (
        isinstance(value, dict) and "additionalProperties" in schema
    ):
        properties: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        result: dict[str, Any] = {}
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None and isinstance(additional, dict):
                sub = additional
            if item is None and sub is not None and not sub.get("nullable"):
                continue
            if sub is not None:
                result[key] = prune_and_default(sub, item)
            elif preserve or additional is True:
                result[key] = item
        for key, sub in properties.items():
            if key not in result and "default" in sub:
                result[key] = prune_and_default(sub, copy.deepcopy(sub["default"]))
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_and_default(schema["items"], item) for item in value]
    return value


def prune_object(schema: dict[str, Any] | None, obj: dict[str, Any]) -> dict[str, Any]:
    """Apply :func:`prune_and_default` to a whole custom resource (metadata is kept)."""
    if schema is None:
        return obj
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEEP}
    result = prune_and_default(schema, body)
    return {**{k: obj[k] for k in _ROOT_KEEP if k in obj}, **result}


def unknown_fields(before: Any, after: Any, path: str = "") -> list[str]:
    """The field paths present in ``before`` that pruning removed from ``after``."""
    found: list[str] = []
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            child = f"{path}.{key}" if path else key
            if key not in after:
                if value is not None:  # nulls of non-nullable fields are dropped, not unknown
                    found.append(child)
            else:
                found += unknown_fields(value, after[key], child)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            found += unknown_fields(old, new, f"{path}[{index}]")
    return found


def _to_jsonschema(schema: Any) -> Any:
    """OpenAPI v3 -> JSON schema: `nullable` becomes a `null` type, int-or-string an anyOf."""
    if isinstance(schema, list):
        return [_to_jsonschema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {
        k: _to_jsonschema(v)
        for k, v in schema.items()
        if not k.startswith("x-kubernetes-") and k not in ("nullable", "format")
    }
    if schema.get("x-kubernetes-int-or-string"):
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        result.pop("type", None)
    if schema.get("nullable") and isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
    if "properties" in result:
        # Property names are not subschemas: restore them if a name looked like a keyword.
        result["properties"] = {k: _to_jsonschema(v) for k, v in schema["properties"].items()}
    return result


def validate(schema: dict[str, Any] | None, obj: dict[str, Any]) -> list[tuple[str, str]]:
    """Field errors as (path, message) pairs, in the API server's wording where it matters."""
    if schema is None:
        return []
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEEP}
    # OpenAPI 3.0 schemas are JSON Schema draft 4 (boolean exclusiveMinimum/Maximum).
    validator = jsonschema.Draft4Validator(_to_jsonschema(schema))
    causes: list[tuple[str, str]] = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "<root>"
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            causes.append((f"{path}.{missing}" if path != "<root>" else missing, "Required value"))
        elif error.validator == "enum":
            allowed = ", ".join(f'"{v}"' for v in error.validator_value)
            causes.append(
                (path, f"Unsupported value: {error.instance!r}: supported values: {allowed}")
            )
        else:
            causes.append((path, f"Invalid value: {error.instance!r}: {error.message}"))
    return causes
