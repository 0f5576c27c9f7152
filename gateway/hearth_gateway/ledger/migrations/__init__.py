"""Alembic migrations of the usage ledger, applied by `hearth_gateway.ledger.migrate`."""
