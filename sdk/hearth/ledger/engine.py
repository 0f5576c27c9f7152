"""Which database a ledger URL names, and the SQLAlchemy engine for it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

PATH_ENV = "HEARTH_GATEWAY_LEDGER_PATH"
DEFAULT_PATH = "hearth-ledger.sqlite3"
# How long a SQLite writer waits for another writer's lock before failing (seconds).
SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option naming the statement that opens a SQLite transaction.
SQLITE_BEGIN_OPTION = "hearth_sqlite_begin"


def ledger_url(url: str | None, environ: Mapping[str, str] = os.environ) -> URL:
    """The SQLAlchemy URL of the ledger that `url` names.

    None: a SQLite file at $HEARTH_GATEWAY_LEDGER_PATH (default ./hearth-ledger.sqlite3).
    "postgresql://..." (or "postgres://..."): PostgreSQL through psycopg 3.
    "sqlite:///path": that SQLite file.
    """
    if url is None:
        return URL.create("sqlite+pysqlite", database=environ.get(PATH_ENV) or DEFAULT_PATH)
    scheme = url.partition("://")[0].lower()
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        parsed = make_url("postgresql" + url[len(scheme) :])
        return parsed.set(drivername="postgresql+psycopg")
    if scheme in ("sqlite", "sqlite+pysqlite"):
        parsed = make_url(url).set(drivername="sqlite+pysqlite")
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError(f"ledger url {url!r}: a SQLite ledger needs a file path")
        return parsed
    raise ValueError(
        f"ledger url: unsupported scheme {scheme!r}; use postgresql://... or sqlite:///path"
    )


def create_ledger_engine(url: URL, *, pool_size: int) -> Engine:
    """An engine with the durability settings the ledger relies on."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool_size=pool_size)
    # pre_ping: a connection broken by a PostgreSQL restart is replaced, not handed out.
    # PostgreSQL's default synchronous_commit=on makes a returned commit durable.
    return create_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)


def _sqlite_engine(url: URL, *, pool_size: int) -> Engine:
    assert url.database is not None
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's begin event open transactions (below) instead of the sqlite3
        # module, which would not wrap DDL in one (the recipe in SQLAlchemy's pysqlite docs).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer. synchronous=FULL: a commit is on disk when it
        # returns, so a record survives a power cut as well as a killed process.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        begin = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN")
        connection.exec_driver_sql(begin)

    return engine
