"""User: a person (email) or service account with a role in an account."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ._base import (
    AGE,
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


class Role(StrEnum):
    """Fireworks' roles; each is a ClusterRole the operator binds in the account namespace."""

    ADMIN = "admin"
    USER = "user"
    CONTRIBUTOR = "contributor"
    INFERENCE_USER = "inference-user"


class UserState(StrEnum):
    """Fireworks' User states."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    CREATING = "CREATING"
    READY = "READY"
    UPDATING = "UPDATING"
    DELETING = "DELETING"


class UserSpec(CamelModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "self.serviceAccount ? !has(self.email) : has(self.email)",
                "a person needs an email (their Kubernetes User identity); a service account "
                "(serviceAccount: true) must not have one",
                field_path=".email",
            )
        )
    )

    role: Role = Field(default=Role.USER, description="admin, user, contributor or inference-user.")
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="The person's email; bound as a Kubernetes User subject.",
    )
    service_account: bool = Field(
        default=False,
        description="A service account acts only through API keys; bound as a ServiceAccount.",
    )
    display_name: DisplayName | None = None


class UserStatus(StatusBase):
    state: UserState = UserState.STATE_UNSPECIFIED
    subject: str | None = Field(
        default=None, description="The identity bound, e.g. User alice@example.com."
    )
    role_binding: str | None = Field(default=None, description="The RoleBinding that grants it.")


class User(Resource[UserSpec, UserStatus]):
    kind: Literal["User"] = "User"
    kind_info = KindInfo(
        plural="users",
        singular="user",
        short_names=("husr",),
        scope="Namespaced",
        description="A member of a Hearth account (Fireworks accounts/<a>/users/<id>) and role.",
        printer_columns=(
            PrinterColumn("Role", ".spec.role"),
            PrinterColumn("Email", ".spec.email"),
            PrinterColumn("Service-Account", ".spec.serviceAccount", "boolean", priority=1),
            state_column(),
            AGE,
        ),
        root_rules=(object_name_rule("User"),),
    )
