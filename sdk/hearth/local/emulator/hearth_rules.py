"""Plugging Hearth's CEL evaluation into the emulator's write path.

The emulator prunes, defaults and validates custom resources against their
openAPIV3Schema itself, but does not evaluate `x-kubernetes-validations` (CEL).
`hearth.validation` does (with cel-python), so for `hearth.dev` objects this
validator adds its findings, which makes the emulator refuse with a 422 what a real
API server would refuse. The import is lazy: the harness does not depend on the sdk.
"""

from __future__ import annotations

from typing import Any

from hearth.local.emulator.resources import ResourceType
from hearth.local.emulator.store import Validator


def hearth_validator(group: str = "hearth.dev") -> Validator:
    from hearth.validation import UnknownKindError, default_validator

    validator = default_validator()

    def validate(
        rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[tuple[str, str]]:
        if rtype.group != group:
            return []
        try:
            result = validator.validate(obj, old)
        except UnknownKindError:
            return []
        return [(error.path or "<root>", error.message) for error in result.errors]

    return validate
