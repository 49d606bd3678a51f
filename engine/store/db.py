"""Connecting to the store and keeping its schema current (alembic, applied on first use)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from engine.core.errors import RuntimeFailure, StoreUnavailable

if TYPE_CHECKING:  # alembic costs a quarter of a second to import: only migrations need it
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
# Several daemons may start at once against one PostgreSQL: one migrates, the others wait.
_MIGRATION_LOCK = 7_420_001


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def dialect_insert(dialect: str, table: sa.Table):
    """INSERT with the database's ON CONFLICT support (SQLite and PostgreSQL spell it alike)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


SQLITE_ERROR = 1  # the generic "SQL error or missing database" code, never a busy or full store


def is_outage(exc: BaseException) -> bool:
    """Is this the store being unreachable (down, restarting, disk full, locked too long) rather
    than a mistake? Outages are waited out; mistakes are reported. SQLite raises OperationalError
    for statements it refuses too (malformed JSON in a row, a missing table): those carry the
    generic SQLITE_ERROR code, and retrying them would wait forever."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    return getattr(exc.orig, "sqlite_errorcode", None) != SQLITE_ERROR


# The newest migration. Kept here so that opening a store does not import alembic (a quarter of a
# second of every command's start-up); a test checks it against alembic's own view of the folder.
HEAD_REVISION = "0012"


def head_revision() -> str:
    return HEAD_REVISION


def migrations_head() -> str | None:
    """The head revision as alembic reads it from the migrations folder."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


@dataclass
class Store:
    """An open store: an Engine plus what the queries need to know about its database."""

    engine: Engine
    url: str

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def current_revision(self) -> str | None:
        version = sa.table("alembic_version", sa.column("version_num"))
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.select(version.c.version_num)).scalar()

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to call from several processes."""
        from alembic import command

        with self.engine.connect() as conn:
            if self.is_sqlite:
                # A migration that rebuilds a table (SQLite cannot drop a constraint in place) drops
                # the old copy; with foreign keys on, that would cascade into the rows pointing at it
                # (events at customers, coupons and tasks at deliveries). SQLite's own procedure:
                # keys off outside the transaction, rebuild, check, keys on.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if self.is_sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeFailure("migration left rows whose parent is missing; nothing was changed")
            if self.is_sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()

    def analyze(self, table: sa.Table | None = None) -> None:
        """Refresh planner statistics (after imports), so the intended indexes are chosen. On
        PostgreSQL a table just loaded is vacuumed too: until its pages are marked all-visible,
        every index scan also reads the table (no index-only scans) — autovacuum would get
        there, but later than the next dry run."""
        if self.dialect != "postgresql":
            with self.engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
            return
        # VACUUM cannot run inside a transaction. The name is our own table's, quoted by the dialect.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if table is None:
                conn.execute(sa.text("ANALYZE"))
            else:
                conn.execute(sa.text(f"VACUUM (ANALYZE) {conn.dialect.identifier_preparer.format_table(table)}"))

    @contextmanager
    def durable(self) -> Iterator[sa.Connection]:
        """A transaction whose commit is on disk when it returns, whatever the power does next.

        SQLite runs with synchronous=NORMAL (a commit may roll back on power loss, not on a
        crash); this transaction alone runs with FULL, and its flush of the WAL makes every
        earlier commit durable too. PostgreSQL is durable with synchronous_commit = on."""
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection if self.is_sqlite else None
            if raw is not None:
                raw.execute("PRAGMA synchronous=FULL")  # outside any transaction: SQLite requires it
            try:
                with conn.begin():
                    yield conn
            finally:
                if raw is not None:
                    import sqlite3

                    # A connection broken mid-transaction is thrown away by the pool anyway; its
                    # error, not this one, is the one to report.
                    with contextlib.suppress(sqlite3.Error):
                        raw.execute("PRAGMA synchronous=NORMAL")

    def durability_warning(self) -> str | None:
        """Why a database crash could lose acknowledged ledger writes, if it could."""
        if self.dialect != "postgresql":
            return None
        with self.engine.connect() as conn:
            setting = conn.execute(sa.text("SHOW synchronous_commit")).scalar()
        if setting in ("off", "local"):
            return (
                f"PostgreSQL runs with synchronous_commit = {setting}: a database crash can lose ledger rows "
                "it has already acknowledged, and the customers they cover could be emailed twice. "
                "Set synchronous_commit = on for the nudge database."
            )
        return None

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_functions(dbapi_connection) -> None:
    """SQL functions PostgreSQL has built in: the hash a forgotten customer's address is kept as."""
    from engine.store.hashing import address_hash

    dbapi_connection.create_function(
        "nudge_address_hash", 1, lambda value: address_hash(value) if value else None, deterministic=True
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    _sqlite_functions(dbapi_connection)
    cursor = dbapi_connection.cursor()
    # WAL lets a dry run read while a daemon writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten rows are zeroed, not left in free space: what `nudge forget` erases
    # (and an import's older copy of a row) is gone from the file. Many builds default to off;
    # measured cost on imports, updates and retention deletes is within noise.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid store URL>"


def _read_only_sqlite(dbapi_connection, _record) -> None:
    _sqlite_functions(dbapi_connection)
    dbapi_connection.execute("PRAGMA busy_timeout=30000")


def _read_only_postgresql(dbapi_connection, _record) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    dbapi_connection.commit()


# Every engine is created with hide_parameters=True: a database error's text then never carries a
# row's values (a customer's address) into a log line or onto a terminal.


def open_store(url: str, *, create: bool, read_only: bool = False) -> Store:
    """Open the store at URL. With create, make and migrate it; without, refuse a missing or stale one.

    read_only: for commands that promise to write nothing (dry-run, explain, report). The database
    refuses writes, and SQLite cannot even checkpoint its WAL into the main file on close."""
    try:
        parsed = make_url(url)
    except Exception:
        raise RuntimeFailure(f"invalid store URL {url!r} in config.yaml") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            file = Path(database)
            if not create and not file.exists():
                raise RuntimeFailure(
                    f"no store at {file}: import data first (nudge import customers FILE) "
                    "or build the demo (nudge demo)"
                )
            file.parent.mkdir(parents=True, exist_ok=True)
        if read_only and database and database != ":memory:":
            engine = sa.create_engine(
                f"sqlite:///file:{Path(database).resolve()}?mode=ro&uri=true", hide_parameters=True
            )
            sa.event.listen(engine, "connect", _read_only_sqlite)
        else:
            engine = sa.create_engine(url, hide_parameters=True)
            sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
        if read_only:
            sa.event.listen(engine, "connect", _read_only_postgresql)
    store = Store(engine=engine, url=url)
    try:
        if create:
            store.migrate()
        else:
            current = store.current_revision()
            if current != head_revision():
                raise RuntimeFailure(
                    f"the store at {_redacted(url)} is at schema revision {current or 'none'}, "
                    f"this nudge needs {head_revision()}: run `nudge migrate`"
                )
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        raise StoreUnavailable(f"cannot reach the store at {_redacted(url)}: {reason}") from None
    return store
