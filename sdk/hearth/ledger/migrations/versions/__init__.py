"""Alembic revisions of the usage ledger, oldest first (see `down_revision`)."""
