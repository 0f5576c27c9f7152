"""ApiKey: a secret that authenticates one user's calls to the gateway.

Fireworks names it ``accounts/<a>/users/<u>/apiKeys/<keyId>``; here it is the object
``<keyId>`` in the account namespace, with the user in ``spec.user``. The operator generates
the key once, hands the plaintext to the user in a Secret and keeps only a salted hash in
``status`` (see ``hearth.api_keys``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ._base import (
    AGE,
    ID_PATTERN,
    CamelModel,
    DisplayName,
    KindInfo,
    PrinterColumn,
    Resource,
    StatusBase,
    StrEnum,
    cel,
    object_name_rule,
    rules,
    state_column,
)


class ApiKeyState(StrEnum):
    """Where a key stands; only READY keys that have not expired authenticate."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    CREATING = "CREATING"
    READY = "READY"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"


class ApiKeySpec(CamelModel):
    user: str = Field(
        pattern=ID_PATTERN,
        max_length=63,
        description="The User (an ID in this account) whose role the key carries.",
        json_schema_extra=rules(
            cel("self == oldSelf", "user is immutable; create a key for the other user")
        ),
    )
    display_name: DisplayName = Field(default="default", description="Human-readable name.")
    expire_time: datetime | None = Field(
        default=None,
        description="RFC 3339 time after which the key is refused; unset: never expires.",
    )


class ApiKeyStatus(StatusBase):
    state: ApiKeyState = ApiKeyState.STATE_UNSPECIFIED
    prefix: str | None = Field(
        default=None, max_length=64, description="The key's first characters (not secret)."
    )
    salt: str | None = Field(
        default=None, max_length=128, description="Hex salt of the key's hash."
    )
    key_hash: str | None = Field(
        default=None,
        max_length=128,
        description="sha256:<hex> of salt + key; the plaintext is never stored here.",
    )
    secret_name: str | None = Field(
        default=None,
        max_length=253,
        description="The Secret in this namespace whose data key 'key' holds the plaintext.",
    )


class ApiKey(Resource[ApiKeySpec, ApiKeyStatus]):
    kind: Literal["ApiKey"] = "ApiKey"
    kind_info = KindInfo(
        plural="apikeys",
        singular="apikey",
        short_names=("hkey",),
        scope="Namespaced",
        description=(
            "A Hearth API key (Fireworks accounts/<a>/users/<u>/apiKeys/<id>): authenticates "
            "a user's inference calls with the user's role."
        ),
        printer_columns=(
            PrinterColumn("User", ".spec.user"),
            PrinterColumn("Prefix", ".status.prefix"),
            state_column(),
            PrinterColumn("Expire", ".spec.expireTime", "date"),
            AGE,
        ),
        root_rules=(object_name_rule("ApiKey"),),
    )
