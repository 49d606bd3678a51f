"""A customer's rights over their data: everything held about them (export), erasure (forget), and
events kept no longer than the configured retention.

Erasure keeps what the guarantees need and nothing that names the person: ledger, coupon and task
rows stay (so a rerun never contacts anyone twice and the reports still add up) under a one-way
hash of the id; a suppressed address stays suppressed as a hash of the address; the consent log
keeps its entries (the proof of what they agreed to, and when) under the id's hash with each
address hashed, and a `forget` entry; the id's hash is remembered so a later import of the same
customer is skipped, not silently re-created."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.core.channels import ConsentChange, ConsentSource
from engine.core.clock import iso_utc, naive_utc
from engine.core.errors import Problem, UserInputError
from engine.store.consent import ConsentEntry, append
from engine.store.hashing import address_hash, address_hash_sql
from engine.store.tables import (
    audience_history,
    consent_log,
    coupons,
    customer_metrics,
    customers,
    deliveries,
    events,
    forgotten,
    subscriptions,
    suppressions,
    tasks,
)

ERASED = "(erased: nudge forget)"


def id_hash(customer_id: str) -> str:
    """What stays of a forgotten customer's id: enough to recognise it again, not to read it."""
    return "forgotten:" + hashlib.sha256(customer_id.encode()).hexdigest()[:32]


def _plain(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, datetime) else value


def _rows(conn: Connection, query: sa.Select) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in conn.execute(query)]


def export_customer(conn: Connection, customer_id: str) -> dict[str, Any]:
    """Everything the store holds about one customer, as plain JSON-ready data."""
    person = _rows(conn, sa.select(customers).where(customers.c.id == customer_id))
    if not person:
        raise UserInputError([Problem("<customer>", None, None, f"no customer with id {customer_id!r} in the store")])
    address = (person[0].get("email") or "").lower()
    mine = deliveries.c.customer_id == customer_id
    return {
        "customer": person[0],
        "events": _rows(
            conn,
            sa.select(events.c.type, events.c.occurred_at, events.c.properties)
            .where(events.c.customer_id == customer_id)
            .order_by(events.c.occurred_at, events.c.pk),
        ),
        "messages": _rows(
            conn,
            sa.select(
                deliveries.c.campaign,
                deliveries.c.occurrence,
                deliveries.c.status,
                deliveries.c.reason,
                deliveries.c.email,
                deliveries.c.variant,
                deliveries.c.sent_at,
            )
            .where(mine)
            .order_by(deliveries.c.occurrence, deliveries.c.id),
        ),
        "coupons": _rows(
            conn,
            sa.select(coupons.c.code, coupons.c.name, coupons.c.campaign, coupons.c.created_at, coupons.c.expires_at)
            .where(coupons.c.customer_id == customer_id)
            .order_by(coupons.c.created_at),
        ),
        "tasks": _rows(
            conn,
            sa.select(tasks.c.queue, tasks.c.title, tasks.c.body, tasks.c.status, tasks.c.created_at, tasks.c.due_at)
            .where(tasks.c.customer_id == customer_id)
            .order_by(tasks.c.created_at),
        ),
        "metrics": _rows(conn, sa.select(customer_metrics).where(customer_metrics.c.customer_id == customer_id)),
        "suppressions": _rows(conn, sa.select(suppressions).where(suppressions.c.email == address)) if address else [],
        "subscriptions": _rows(conn, subscriptions_of(customer_id)),
        "consent_log": _rows(conn, consent_log_of(customer_id)),
    }


def subscriptions_of(customer_id: str) -> sa.Select:
    """A customer's stored topic choices (a topic without one is subscribed), by topic."""
    columns = (subscriptions.c.topic, subscriptions.c.subscribed, subscriptions.c.updated_at)
    return sa.select(*columns).where(subscriptions.c.customer_id == customer_id).order_by(subscriptions.c.topic)


CONSENT_COLUMNS = ("at", "channel", "topic", "change", "old_value", "new_value", "source", "address")


def consent_log_of(customer_id: str) -> sa.Select:
    """A customer's consent log, oldest first."""
    return (
        sa.select(*(consent_log.c[name] for name in CONSENT_COLUMNS))
        .where(consent_log.c.customer_id == customer_id)
        .order_by(consent_log.c.at, consent_log.c.id)
    )


@dataclass
class Forgotten:
    customer_id: str
    kept_as: str
    events: int = 0
    messages: int = 0
    coupons: int = 0
    tasks: int = 0
    suppressed: bool = False


_ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


def _redacted(reason: str) -> str:
    """A failure reason without the addresses a provider quoted in it ("550 <ann@…> unknown")."""
    return _ADDRESS.sub("[address]", reason)


def forget_customer(
    conn: Connection, customer_id: str, now: datetime, consent_source: str | None = ConsentSource.OPERATOR
) -> Forgotten:
    """Erase one customer's personal data in the caller's transaction (all or nothing). Their
    consent log is kept hashed, with a `forget` entry from `consent_source` (None: no entry, for a
    profile that never held consent)."""
    person = conn.execute(
        sa.select(customers.c.email, customers.c.phone).where(customers.c.id == customer_id)
    ).one_or_none()
    if person is None:
        raise UserInputError([Problem("<customer>", None, None, f"no customer with id {customer_id!r} in the store")])
    kept = id_hash(customer_id)
    done = Forgotten(customer_id, kept)
    # Every address and number they had, not only the current ones: each may sit in suppressions.
    sent_to = sa.select(deliveries.c.email, deliveries.c.phone).where(deliveries.c.customer_id == customer_id)
    addresses = {
        (a or "").strip().lower() for a in (*person, *(a for row in conn.execute(sent_to.distinct()) for a in row))
    }
    addresses.discard("")
    for row in conn.execute(
        sa.select(deliveries.c.id, deliveries.c.reason).where(
            deliveries.c.customer_id == customer_id, deliveries.c.reason.contains("@")
        )
    ).all():
        conn.execute(sa.update(deliveries).where(deliveries.c.id == row.id).values(reason=_redacted(row.reason)))
    done.messages = conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.customer_id == customer_id)
        .values(customer_id=kept, email=None, phone=None)
    ).rowcount
    done.coupons = conn.execute(
        sa.update(coupons).where(coupons.c.customer_id == customer_id).values(customer_id=kept)
    ).rowcount
    done.tasks = conn.execute(
        sa.update(tasks).where(tasks.c.customer_id == customer_id).values(customer_id=kept, title=ERASED, body=None)
    ).rowcount
    done.suppressed = _hash_suppressions(conn, addresses)
    _keep_consent_hashed(conn, customer_id, kept, now, consent_source)
    done.events = conn.execute(sa.delete(events).where(events.c.customer_id == customer_id)).rowcount
    conn.execute(sa.delete(customer_metrics).where(customer_metrics.c.customer_id == customer_id))
    conn.execute(sa.delete(subscriptions).where(subscriptions.c.customer_id == customer_id))
    conn.execute(sa.delete(customers).where(customers.c.id == customer_id))
    exists = conn.execute(sa.select(forgotten.c.id_hash).where(forgotten.c.id_hash == kept)).first()
    if exists is None:
        conn.execute(sa.insert(forgotten).values(id_hash=kept, forgotten_at=naive_utc(now)))
    return done


def _hash_suppressions(conn: Connection, addresses: set[str]) -> bool:
    """Each suppressed address or number stays suppressed, as its hash; True if any was."""
    suppressed = False
    for address in sorted(addresses):
        digest = address_hash(address)
        if conn.execute(sa.select(suppressions.c.email).where(suppressions.c.email == digest)).first() is not None:
            # Already kept as a hash (an earlier forget of the same address): the plain row goes.
            hashed = conn.execute(sa.delete(suppressions).where(suppressions.c.email == address)).rowcount + 1
        else:
            hashed = conn.execute(
                sa.update(suppressions).where(suppressions.c.email == address).values(email=digest)
            ).rowcount
        suppressed = suppressed or bool(hashed)
    return suppressed


def _keep_consent_hashed(conn: Connection, customer_id: str, kept: str, now: datetime, source: str | None) -> None:
    """The consent log stays the proof of what was agreed to and when, naming nobody: the id and
    every address become their hashes (the same hashes as the ledger's and the suppressions')."""
    conn.execute(
        sa.update(consent_log)
        .where(consent_log.c.customer_id == customer_id)
        .values(customer_id=kept, address=address_hash_sql(consent_log.c.address, conn.dialect.name))
    )
    if source is not None:
        append(conn, [ConsentEntry(kept, ConsentChange.FORGET, source)], naive_utc(now))


# The tables forget deletes from or rewrites: on PostgreSQL their old row versions stay in the heap
# until VACUUM reclaims them.
FORGET_TOUCHES = (
    customers,
    events,
    customer_metrics,
    deliveries,
    coupons,
    tasks,
    suppressions,
    subscriptions,
    consent_log,
)


def scrub_after_forget(engine: Engine) -> list[str]:
    """Take the erased rows' old bytes off the disk, after forget's transaction has committed;
    returns warnings for what could not be done now (never fails: the erasure itself stands).

    SQLite zeroes deleted rows (secure_delete, on every connection), but the WAL still holds page
    images from before; a TRUNCATE checkpoint copies the zeroed pages into the file and empties the
    WAL. PostgreSQL keeps dead row versions in tables and indexes until VACUUM, which runs here
    for the touched tables; what it cannot reach (bytes in pages' free space until overwritten, WAL
    segments until recycled, archives and backups) is the operator's: see the README's Privacy."""
    return _checkpoint_sqlite(engine) if engine.dialect.name == "sqlite" else _vacuum_postgresql(engine)


def _vacuum_postgresql(engine: Engine) -> list[str]:
    skipped: dict[str, str] = {}
    # VACUUM cannot run in a transaction; a role that does not own a table gets a WARNING notice
    # ("skipping ...") rather than an error, so notices are listened to as well.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for table in FORGET_TOUCHES:
            heard: list[str] = []

            def listen(diagnostic: Any, heard: list[str] = heard) -> None:
                if diagnostic.severity_nonlocalized == "WARNING":
                    heard.append(diagnostic.message_primary or "a warning")

            raw.add_notice_handler(listen)
            try:
                # INDEX_CLEANUP ON: in a large table the few dead rows would not reach the threshold
                # for index cleanup, and index entries hold the address and the id. Measured: 0.07 s
                # for 1M events. The table name is our own, quoted by the dialect.
                name = conn.dialect.identifier_preparer.format_table(table)
                conn.execute(sa.text(f"VACUUM (INDEX_CLEANUP ON) {name}"))
            except sa.exc.DBAPIError as exc:
                heard.append(str(exc.orig or exc).strip().splitlines()[0])
            finally:
                raw.remove_notice_handler(listen)
            if heard:
                skipped[table.name] = heard[0]
    if not skipped:
        return []
    names, first = ", ".join(skipped), next(iter(skipped.values()))  # one reason: they are alike
    return [
        f"could not VACUUM {names} ({first}): the erased rows stay in those tables' "
        f"pages until their next VACUUM; run `VACUUM {names};` as the tables' owner"
    ]


def _checkpoint_sqlite(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        # Waits (busy_timeout) for readers in the middle of a query; an idle daemon does not block it.
        busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if not busy:
        return []
    return [
        "the SQLite WAL could not be emptied (another process kept reading): the erased customer's old "
        "pages stay in it until the next full checkpoint, which SQLite makes when the last process "
        "using the store closes it; or run: sqlite3 FILE 'PRAGMA wal_checkpoint(TRUNCATE)'"
    ]


def forgotten_among(conn: Connection, ids: set[str]) -> set[str]:
    """Which of these customer ids were erased with `nudge forget` (an import skips them)."""
    if not ids:
        return set()
    by_hash = {id_hash(i): i for i in ids}
    found: set[str] = set()
    hashes = sorted(by_hash)
    for start in range(0, len(hashes), 1000):
        chunk = hashes[start : start + 1000]
        found.update(
            by_hash[h]
            for h in conn.execute(sa.select(forgotten.c.id_hash).where(forgotten.c.id_hash.in_(chunk))).scalars()
        )
    return found


def apply_retention(conn: Connection, keep: timedelta, now: datetime) -> int:
    """Delete events, and the audience history of occurrences, older than `keep`; returns how
    many events went. (The history is counts, not personal data, but it grows by a row a campaign
    every occurrence: it goes with the events it was computed from.)"""
    cutoff = naive_utc(now) - keep
    conn.execute(sa.delete(audience_history).where(audience_history.c.occurrence < cutoff))
    return conn.execute(sa.delete(events).where(events.c.occurred_at < cutoff)).rowcount
