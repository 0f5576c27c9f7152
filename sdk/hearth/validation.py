"""Validate Hearth manifests offline, the way the Kubernetes API server would.

For each object: look up its CRD, apply the schema's defaults, refuse unknown fields (what
``kubectl apply`` does with strict field validation), check the OpenAPI schema, then
evaluate every CEL rule (``x-kubernetes-validations``) with cel-python, including the
transition rules that compare with the previous object on an update.

Before any of that it checks what the API server checks of every object whatever its
CRD (``metadata.name`` is a non-empty string, labels are strings, integers fit in 64
bits), so that no rule ever sees a value it cannot evaluate. A value a rule still cannot
evaluate (a duration longer than Kubernetes' CEL can hold) is refused with a message
naming the field, the value and the rule, never as an internal error.

This is what ``hearthctl validate`` runs, what the test suite checks the CRDs and
``examples/`` with, and what the operator can use to re-check objects it reads. It is not
an API server: rules that span objects (a LoRA's base model, quota) are the operator's.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import celpy
import yaml
from celpy.evaluation import CELEvalError
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from .crd import build_crds
from .manifests import ManifestError as ManifestError
from .manifests import load_documents as load_documents

JsonSchema = dict[str, Any]
Json = Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class FieldError:
    """One problem, with the field path and wording ``kubectl`` users know."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


@dataclass(frozen=True)
class Result:
    kind: str
    name: str
    errors: tuple[FieldError, ...]
    #: The object after defaulting, as the API server would store it.
    defaulted: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.errors

    def describe(self) -> str:
        if self.ok:
            return f"{self.kind}/{self.name}: valid"
        lines = [f'The {self.kind} "{self.name}" is invalid:']
        lines += [f"* {error}" for error in self.errors]
        return "\n".join(lines)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _short(value: Json) -> str:
    text: str = json.dumps(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return text if len(text) <= 80 else text[:77] + '..."'


# --- defaulting -------------------------------------------------------------------------


def apply_defaults(value: Json, schema: JsonSchema) -> Json:
    """Fill in schema defaults inside objects that exist, as the API server does."""
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties", {})
        for name, sub in properties.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(value[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in list(value):
                if name not in properties:
                    value[name] = apply_defaults(value[name], extra)
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


# --- unknown fields ---------------------------------------------------------------------


def _unknown_fields(value: Json, schema: JsonSchema, path: str) -> Iterator[FieldError]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            child = _join(path, name)
            if not path and name == "metadata":
                continue  # ObjectMeta's fields are the API server's, checked by _metadata_errors
            if properties is not None and name in properties:
                yield from _unknown_fields(item, properties[name], child)
            elif isinstance(extra, dict):
                yield from _unknown_fields(item, extra, child)
            elif properties is not None:
                yield FieldError(child, f'unknown field "{child}"')
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], _join(path, index))


# --- object metadata and numbers, as the API server decodes them -----------------------


def _wrong_type(path: str, value: Json, expected: str) -> FieldError:
    return FieldError(path, f"Invalid value: {_short(value)}: must be of type {expected}")


def _metadata_errors(obj: dict[str, Any]) -> list[FieldError]:
    """What the API server checks of ``metadata`` for every kind, before the CRD's schema.

    A name that is not a string (``name: 12345``) never reaches a CEL rule this way.
    """
    metadata = obj.get("metadata")
    if metadata is None:
        return [FieldError("metadata.name", "Required value: name is required")]
    if not isinstance(metadata, dict):
        return [_wrong_type("metadata", metadata, "object")]
    errors: list[FieldError] = []
    for key in ("name", "namespace", "generateName"):
        value = metadata.get(key)
        if value is not None and not isinstance(value, str):
            errors.append(_wrong_type(f"metadata.{key}", value, "string"))
    if metadata.get("name") in (None, ""):
        errors.append(FieldError("metadata.name", "Required value: name is required"))
    for key in ("labels", "annotations"):
        pairs = metadata.get(key)
        if pairs is None:
            continue
        if not isinstance(pairs, dict):
            errors.append(_wrong_type(f"metadata.{key}", pairs, "object"))
            continue
        errors += [
            _wrong_type(f"metadata.{key}[{name}]", value, "string")
            for name, value in pairs.items()
            if not isinstance(value, str)
        ]
    return errors


def _lone_surrogate(text: str) -> str | None:
    return next((char for char in text if "\ud800" <= char <= "\udfff"), None)


def _text_errors(value: Json, path: str) -> Iterator[FieldError]:
    """Strings that are not Unicode text (a lone UTF-16 surrogate, as ``"\\ud800"`` in JSON):
    Kubernetes cannot store them as UTF-8, and no CEL string function can read them."""
    if isinstance(value, str):
        char = _lone_surrogate(value)
        if char is not None:
            yield FieldError(
                path,
                f"Invalid value: {_short(value)}: must be valid Unicode text "
                f"(it contains the lone surrogate U+{ord(char):04X})",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _lone_surrogate(key) is not None:
                yield FieldError(
                    path, f"Invalid value: {_short(key)}: a field name must be valid Unicode text"
                )
                continue
            yield from _text_errors(item, _join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _text_errors(item, _join(path, index))


def _beyond_int64(value: Json) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return is_int and not INT64_MIN <= value <= INT64_MAX


def _int64_errors(value: Json, schema: JsonSchema, path: str) -> Iterator[FieldError]:
    """Integers beyond 64 bits: the API server cannot decode them as integers (nor can CEL)."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key) or (extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _int64_errors(item, sub, _join(path, key))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _int64_errors(item, schema["items"], _join(path, index))
    elif schema.get("type") == "integer" and _beyond_int64(value):
        yield _wrong_type(path, value, "integer (a 64-bit integer)")


# --- OpenAPI schema ---------------------------------------------------------------------


def _schema_message(error: SchemaError) -> str:
    bound: Any = error.validator_value
    value: Any = error.instance
    node: Any = error.schema
    match error.validator:
        case "required":
            return "Required value: " + error.message.replace(" is a required property", "")
        case "type":
            return f"Invalid value: {_short(value)}: must be of type {bound}"
        case "enum":
            supported = ", ".join(json.dumps(v) for v in bound)
            return f"Unsupported value: {_short(value)}: supported values: {supported}"
        case "minimum":
            strict = node.get("exclusiveMinimum") is True
            relation = "greater than" if strict else "greater than or equal to"
            return f"Invalid value: {_short(value)}: should be {relation} {bound}"
        case "maximum":
            strict = node.get("exclusiveMaximum") is True
            relation = "less than" if strict else "less than or equal to"
            return f"Invalid value: {_short(value)}: should be {relation} {bound}"
        case "pattern":
            return f"Invalid value: {_short(value)}: should match '{bound}'"
        case "maxLength":
            return f"Too long: may not be longer than {bound}"
        case "minLength":
            return f"Invalid value: {_short(value)}: should be at least {bound} chars long"
        case "maxItems":
            return f"Too many: {len(value)}: must have at most {bound} items"
        case "maxProperties":
            return f"Too many: {len(value)}: must have at most {bound} properties"
        case "format" if bound == "date-time":
            return f"Invalid value: {_short(value)}: should be an RFC 3339 date-time"
        case _:
            return f"Invalid value: {_short(value)}: {error.message}"


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    """RFC 3339, as the API server checks ``format: date-time`` (non-strings pass here)."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _schema_errors(obj: Json, schema: JsonSchema) -> Iterator[FieldError]:
    validator = Draft4Validator(schema, format_checker=_FORMATS)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path))):
        path = ""
        for key in error.absolute_path:
            path = _join(path, key)
        if error.validator == "required":
            missing = error.message.split("'")[1]
            yield FieldError(_join(path, missing), "Required value")
            continue
        yield FieldError(path, _schema_message(error))


def _old_object_errors(old: Json, schema: JsonSchema) -> list[FieldError]:
    """Values in the old object of an update that no rule could compare with.

    An object the API server stored always has the schema's types, so these arise only
    from an old object written by hand; they are reported rather than fed to CEL.
    """
    body = {k: v for k, v in old.items() if k != "metadata"} if isinstance(old, dict) else old
    found = list(_text_errors(body, "")) + list(_int64_errors(body, schema, ""))
    found += [e for e in _schema_errors(body, schema) if "must be of type" in e.message]
    return [FieldError(e.path, f"{e.message} (in the old object)") for e in found]


# --- CEL --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    # One environment: each new one builds a parser and resets the recursion limit.
    return celpy.Environment()


@lru_cache(maxsize=512)
def _program(rule: str) -> celpy.Runner:
    environment = _environment()
    return environment.program(environment.compile(rule))


def _to_cel(value: Json, schema: JsonSchema) -> Any:
    """JSON -> CEL values typed by the schema (a ``number`` given as 1 is a double)."""
    types = celpy.celtypes
    if isinstance(value, bool):
        return types.BoolType(value)
    if isinstance(value, int):
        if schema.get("type") == "number":
            return types.DoubleType(float(value))
        return types.IntType(value)
    if isinstance(value, float):
        return types.DoubleType(value)
    if isinstance(value, str):
        return types.StringType(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        converted = {}
        for key, item in value.items():
            sub = properties.get(key) or (extra if isinstance(extra, dict) else {})
            converted[types.StringType(key)] = _to_cel(item, sub)
        return types.MapType(converted)
    if isinstance(value, list):
        items = schema.get("items", {})
        return types.ListType([_to_cel(item, items) for item in value])
    if value is None:
        return None
    raise TypeError(f"cannot convert {type(value).__name__} to CEL")


#: Go's time.Duration, which Kubernetes' CEL durations are: int64 nanoseconds.
_DURATION_MAX = "2562047h47m16.854775807s"
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_NANOSECONDS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def _duration_nanoseconds(text: str) -> int | None:
    """The length of a Go duration string in nanoseconds, unbounded; None if not one."""
    body = text.lstrip("+-")
    if not body or _DURATION_PART.sub("", body):
        return None
    total = sum(
        Fraction(number) * _NANOSECONDS[unit] for number, unit in _DURATION_PART.findall(body)
    )
    return int(total)


def _shown(value: Json) -> str:
    """A value as the API server shows it in an Invalid error: scalars, or their type."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return _short(value)


def _at_field_path(value: Json, field_path: str) -> Json:
    """The value a rule's ``fieldPath`` (``.a.b``) points at, or ``value`` if absent."""
    node = value
    for part in field_path.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return value
        node = node[part]
    return node


def _describe_rule(entry: dict[str, str]) -> str:
    return f"rule {entry['rule']!r} ({entry['message']})"


def _unevaluable(entry: dict[str, str], value: Json) -> str | None:
    """Why CEL in the API server cannot evaluate ``entry`` on ``value``, before trying."""
    if "duration(self)" in entry["rule"] and isinstance(value, str):
        nanoseconds = _duration_nanoseconds(value)
        if nanoseconds is not None and abs(nanoseconds) > INT64_MAX:
            return (
                f"duration out of range: Kubernetes durations are at most {_DURATION_MAX}, "
                f"so {_describe_rule(entry)} cannot be checked"
            )
    return None


def _evaluation_failure(entry: dict[str, str], error: CELEvalError) -> str:
    """An evaluation error in words: what went wrong, and which rule it was."""
    cause = str(error.args[0]) if error.args else "error"
    details = error.args[2] if len(error.args) > 2 else ()
    if isinstance(details, tuple) and details:
        cause = f"{cause}: {details[0]}"
    if "range error" in cause:
        cause = f"value out of range ({cause})"
    return f"{_describe_rule(entry)} cannot be evaluated on this value: {cause}"


def _rule_errors(
    value: Json, old: Json, schema: JsonSchema, path: str, has_old: bool
) -> Iterator[FieldError]:
    for entry in schema.get("x-kubernetes-validations", []):
        rule = entry["rule"]
        transition = "oldSelf" in rule
        if transition and not has_old:
            continue  # transition rules only run on updates where the old value exists
        # A rule reports at its fieldPath (relative to where it sits), if it has one.
        field_path = entry.get("fieldPath", "")
        target = f"{path}{field_path}" if path else field_path.lstrip(".")
        shown = _shown(_at_field_path(value, field_path) if field_path else value)
        problem = _unevaluable(entry, value)
        if problem is not None:
            yield FieldError(target, f"Invalid value: {shown}: {problem}")
            continue
        activation = {"self": _to_cel(value, schema)}
        if transition:
            activation["oldSelf"] = _to_cel(old, schema)
        try:
            passed = _program(rule).evaluate(activation)
        except CELEvalError as error:
            yield FieldError(target, f"Invalid value: {shown}: {_evaluation_failure(entry, error)}")
            continue
        if not (isinstance(passed, celpy.celtypes.BoolType) and bool(passed)):
            yield FieldError(target, f"Invalid value: {shown}: {entry['message']}")


def _cel_errors(
    value: Json, old: Json, schema: JsonSchema, path: str, has_old: bool
) -> Iterator[FieldError]:
    yield from _rule_errors(value, old, schema, path, has_old)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        old_map = old if has_old and isinstance(old, dict) else {}
        for key, item in value.items():
            sub = properties.get(key) or (extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            yield from _cel_errors(item, old_map.get(key), sub, _join(path, key), key in old_map)
    elif isinstance(value, list) and "items" in schema:
        # Old list items are not correlated (Kubernetes does so only for list-type=map).
        for index, item in enumerate(value):
            yield from _cel_errors(item, None, schema["items"], _join(path, index), False)


# --- entry points -----------------------------------------------------------------------


class UnknownKindError(LookupError):
    pass


class Validator:
    """Validates objects against a set of CRDs (by default, Hearth's generated ones)."""

    def __init__(self, crds: Iterable[dict[str, Any]]) -> None:
        self._schemas: dict[tuple[str, str], JsonSchema] = {}
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                schema = version["schema"]["openAPIV3Schema"]
                self._schemas[(api_version, spec["names"]["kind"])] = schema

    @classmethod
    def from_directory(cls, directory: Path) -> Validator:
        crds = []
        for path in sorted(directory.glob("*.yaml")):
            crds += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        return cls(crds)

    def kinds(self) -> list[tuple[str, str]]:
        return sorted(self._schemas)

    def schema_for(self, api_version: str, kind: str) -> JsonSchema:
        try:
            return self._schemas[(api_version, kind)]
        except KeyError:
            known = ", ".join(f"{k} ({v})" for v, k in self.kinds())
            raise UnknownKindError(
                f"no CRD for kind {kind!r} in apiVersion {api_version!r}; known: {known}"
            ) from None

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> Result:
        """Validate a create (``old`` is None) or an update of ``old`` to ``obj``."""
        kind = str(obj.get("kind", ""))
        metadata = obj.get("metadata")
        raw_name = metadata.get("name") if isinstance(metadata, dict) else None
        name = "" if raw_name is None else str(raw_name)
        schema = self.schema_for(str(obj.get("apiVersion", "")), kind)
        new = apply_defaults(copy.deepcopy(obj), schema)
        errors = _metadata_errors(new) + list(_text_errors(new, ""))
        # Bad metadata is reported once, in the API server's words, not again by the schema.
        checked = {k: v for k, v in new.items() if k != "metadata"} if errors else new
        errors += _unknown_fields(new, schema, "")
        too_big = list(_int64_errors(checked, schema, ""))
        errors += too_big
        errors += [
            error
            for error in _schema_errors(checked, schema)
            if error.path not in {e.path for e in too_big}
        ]
        previous = apply_defaults(copy.deepcopy(old), schema) if old is not None else None
        if previous is not None and not errors:
            errors += _old_object_errors(previous, schema)
        if not errors:
            # CEL runs only once the schema holds, so no rule sees an ill-typed value.
            errors += _cel_errors(new, previous, schema, "", previous is not None)
        return Result(kind=kind, name=name, errors=tuple(errors), defaulted=new)


@lru_cache(maxsize=1)
def default_validator() -> Validator:
    """A validator for Hearth's own CRDs, built from the models (no files needed)."""
    return Validator(build_crds())


def validate(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Result:
    """Validate one Hearth object (or an update of ``old`` to ``obj``)."""
    return default_validator().validate(obj, old)
