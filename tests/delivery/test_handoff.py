"""The hand-off gate's group commit, with real threads on both databases: callers that arrive
while a mark is being written are marked together in the next transaction, each gets back exactly
its own owned ids, the fence still refuses rows another worker took, and an outage in a group's
transaction reaches every caller of the group."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.api import ConnectorFatal
from engine.core.status import DeliveryStatus
from engine.delivery import ledger
from engine.delivery.handoff import HandOffGate
from engine.store import Store, open_store
from engine.store.tables import deliveries, occurrences
from tests.support.helpers import Clock, email_campaign, make_runner, wait_until, write_workspace
from tests.support.pgserver import PgServer, create_database
from tests.support.store import seed

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
OCCURRENCE = datetime(2026, 6, 1, 12)
TOKEN = "us:1:abcd"
CALLERS = 8  # as many threads as the bench's SendGrid concurrency
EACH = 5  # ids per caller


def claimed(store: Store, tmp_path: Path) -> tuple[HandOffGate, list[list[int]]]:
    """CALLERS x EACH rows `sending` under our token in an occurrence we own, a gate over them,
    and each caller's ids (disjoint, as the connector's requests are)."""
    seed(
        store,
        customers=[
            {"id": f"c{i:03d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
            for i in range(CALLERS * EACH)
        ],
    )
    runner = make_runner(write_workspace(tmp_path / "ws", [email_campaign()]), store, Clock(NOW))
    claim = ledger.claim_occurrence(store.engine, "promo", OCCURRENCE, runner.worker, runner.now())
    assert claim is not None
    planned = [
        ledger.PlannedRow(f"c{i:03d}", DeliveryStatus.PENDING, f"c{i}@example.com", None, "0", True)
        for i in range(CALLERS * EACH)
    ]
    with store.engine.begin() as conn:
        ledger.record_plan(conn, "promo", OCCURRENCE, planned, {}, runner.now())
        ids = [r.id for r in ledger.claim_batch(conn, "promo", OCCURRENCE, TOKEN, runner.now(), len(planned))]
    assert len(ids) == CALLERS * EACH
    return HandOffGate(runner, claim, TOKEN), [ids[k * EACH : (k + 1) * EACH] for k in range(CALLERS)]


@contextmanager
def writer_held(store: Store) -> Iterator[Callable[[], None]]:
    """Hold what the hand-off's first statement (the lease renewal) needs, from a connection of
    the test's own: the next mark waits in the database, as it does behind another writer.
    Yields the release."""
    if store.is_sqlite:
        raw = sqlite3.connect(store.engine.url.database, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
        try:
            yield raw.rollback
        finally:
            raw.rollback()
            raw.close()
        return
    engine = sa.create_engine(store.url)
    conn = engine.connect()
    # The table, not the row: a renewal that no longer matches (a lost lease) would pass a row lock by.
    conn.execute(sa.text("LOCK TABLE occurrences IN EXCLUSIVE MODE"))
    try:
        yield conn.rollback
    finally:
        with contextlib.suppress(sa.exc.DBAPIError):  # the server may be gone: that is the test
            conn.close()
        engine.dispose()


class Callers:
    """Every caller asks the gate from a thread of its own, all started together."""

    def __init__(self, gate: HandOffGate, asks: list[list[int]]):
        self.answers: list[set[int] | BaseException] = [set() for _ in asks]
        self.threads = [threading.Thread(target=self._ask, args=(gate, k, asks[k])) for k in range(len(asks))]
        for thread in self.threads:
            thread.start()

    def _ask(self, gate: HandOffGate, k: int, ids: list[int]) -> None:
        try:
            self.answers[k] = gate(ids)
        except BaseException as exc:
            self.answers[k] = exc

    def answered(self) -> list[set[int] | BaseException]:
        for thread in self.threads:
            thread.join(120)  # a guard against a hang (a waiter nobody woke), not a timing
            assert not thread.is_alive(), "a caller was never answered"
        return self.answers


def count(engine: sa.Engine, event: str) -> list[int]:
    seen = [0]

    def listener(*_: object) -> None:
        seen[0] += 1

    sa.event.listen(engine, event, listener)
    return seen


def handed(store: Store) -> set[int]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(deliveries.c.id).where(deliveries.c.handed_at.is_not(None))).scalars())


def test_callers_that_overlap_share_a_transaction_and_each_gets_its_own_owned_ids(store, tmp_path):
    gate, asks = claimed(store, tmp_path)
    # Another worker took one row of each caller's request over (back to pending, or under its token).
    taken = [asks[k][k % EACH] for k in range(CALLERS)]
    with store.engine.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(taken[::2])).values(status="pending", claim=None))
        conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(taken[1::2])).values(claim="them:2:ffff"))
    commits = count(store.engine, "commit")
    with writer_held(store) as release:
        callers = Callers(gate, asks)
        # One caller leads and waits on the store; everyone else queues behind its mark.
        assert wait_until(lambda: gate.waiting == CALLERS - 1, 60)
        release()
        answers = callers.answered()
    assert answers == [set(ask) - set(taken) for ask in asks]
    # The first leader's transaction, then one for the seven that waited: not one per caller.
    assert commits[0] == 2
    assert gate.refused == set(taken)
    assert handed(store) == {i for ask in asks for i in ask} - set(taken)


def test_a_lost_lease_refuses_every_caller_of_the_group(store, tmp_path):
    gate, asks = claimed(store, tmp_path)
    with store.engine.begin() as conn:  # another worker has the occurrence now
        conn.execute(sa.update(occurrences).values(claimed_by="them:2:ffff"))
    with writer_held(store) as release:
        callers = Callers(gate, asks)
        assert wait_until(lambda: gate.waiting == CALLERS - 1, 60)
        release()
        answers = callers.answered()
    assert answers == [set() for _ in asks]
    assert gate.refused == {i for ask in asks for i in ask}
    assert handed(store) == set()


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[tuple[PgServer, Store]]:
    """A PostgreSQL server of this test's own, to stop in the middle of it."""
    server = PgServer().start()
    store = open_store(create_database(server.url()), create=True)
    try:
        yield server, store
    finally:
        store.dispose()
        server.stop()


def test_a_postgresql_outage_in_a_groups_transaction_reaches_every_caller_of_it(own_pg, tmp_path):
    server, store = own_pg
    gate, asks = claimed(store, tmp_path)
    with writer_held(store):
        callers = Callers(gate, asks)
        assert wait_until(lambda: gate.waiting == CALLERS - 1, 60)
        # The first leader is cut off mid-transaction; the seven queued behind it find the server
        # gone when their leader opens their transaction.
        server.pause()
        answers = callers.answered()
    assert all(isinstance(a, ConnectorFatal) and "store unreachable at hand-off" in str(a) for a in answers), answers
    server.resume()
    assert handed(store) == set()  # nothing was marked, so nothing could leave


def test_a_sqlite_store_locked_too_long_reaches_every_caller_of_the_group(sqlite_store, tmp_path):
    gate, asks = claimed(sqlite_store, tmp_path)
    # A short busy timeout: locked past it is an outage (waited out by the daemon, not a mistake).
    sqlite_store.engine.dispose()
    sa.event.listen(sqlite_store.engine, "connect", lambda raw, _: raw.execute("PRAGMA busy_timeout=10000"))
    begun = count(sqlite_store.engine, "begin")
    with writer_held(sqlite_store):
        callers = Callers(gate, asks)
        # Queued while the first leader waits for the lock (10 s: threads start in far less, even
        # on a loaded CI machine; the wait ends as soon as they are all there).
        assert wait_until(lambda: gate.waiting == CALLERS - 1, 9)
        answers = callers.answered()
    assert all(isinstance(a, ConnectorFatal) and "store unreachable at hand-off" in str(a) for a in answers), answers
    assert begun[0] == 2  # the first leader's transaction and the group's: the seven did not each try
    assert handed(sqlite_store) == set()
