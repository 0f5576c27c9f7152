"""Applies the ledger's Alembic migrations (migrations/) programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select

from hearth.ledger.engine import SQLITE_BEGIN_OPTION

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: serialises gateways migrating the same database at once.
_PG_LOCK_KEY = 0x4E4152_7448  # arbitrary, constant


def alembic_config() -> Config:
    """The Alembic configuration of the ledger, built in code (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def upgrade(engine: Engine) -> None:
    """Brings the database to the newest revision; a database already there is left as is.

    Runs in one transaction that first takes the database's write lock (SQLite: BEGIN
    IMMEDIATE; PostgreSQL: an advisory lock), so gateways opening the same ledger at once
    migrate it once, and a migration that fails leaves nothing half done.
    """
    config = alembic_config()
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
