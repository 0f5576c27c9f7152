"""accelerator_seconds: each replica's time per UTC hour, unique by (pod_uid, hour).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "accelerator_seconds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("pod_uid", sa.String(255), nullable=False),
        sa.Column("pod", sa.String(255), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("deployment", sa.String(1024), nullable=False),
        sa.Column("accelerator_type", sa.String(64), nullable=False),
        sa.Column("accelerator_count", sa.Integer(), nullable=False),
        sa.Column("replica_seconds", sa.Float(), nullable=False),
        sa.Column("accelerator_seconds", sa.Float(), nullable=False),
        sa.UniqueConstraint("pod_uid", "hour", name="uq_accelerator_seconds_pod_hour"),
    )
    op.create_index(
        "ix_accelerator_seconds_account_hour", "accelerator_seconds", ["account", "hour"]
    )


def downgrade() -> None:
    op.drop_index("ix_accelerator_seconds_account_hour", table_name="accelerator_seconds")
    op.drop_table("accelerator_seconds")
