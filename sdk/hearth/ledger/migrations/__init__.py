"""Alembic migrations of the usage ledger, applied by `hearth.ledger.migrate`."""
