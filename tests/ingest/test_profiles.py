"""Anonymous profiles merged by alias while other requests store their events: no event is lost,
none fails, on both databases (engine/ingest/profiles.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from engine.ingest.profiles import merge_anonymous
from engine.ingest.segment import store_messages
from engine.store.privacy import forget_customer
from engine.store.tables import customers, events, forgotten
from tests.support.helpers import wait_until
from tests.support.store import NOW, seed

WRITES = ("BEGIN", "INSERT", "UPDATE", "DELETE", "CREATE", "WITH")


def _waiting_on_a_lock(store) -> bool:
    with store.engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return bool(conn.exec_driver_sql(query).scalar())


@pytest.mark.parametrize("merging_at", ["UPDATE events", "COMMIT"])
def test_events_stored_while_an_alias_merges_their_profile_are_kept(store, merging_at):
    """Another request stores an event for the profile while the alias has locked it and is about
    to move its events (UPDATE events), or has deleted it and is about to commit (COMMIT)."""
    first = {"customer_id": "anon:v1", "type": "page_view", "id": "e1", "occurred_at": NOW}
    seed(store, customers=[{"id": "anon:v1"}], events=[first])
    track = {"anonymousId": "v1", "event": "Product Viewed", "messageId": "e2", "timestamp": "2026-06-01T08:59:00Z"}
    outcome: list[Any] = []
    reached = threading.Event()
    other = threading.Thread(target=lambda: outcome.append(_stored_or_failed(store, track)), name="other")

    def let_the_other_request_in() -> None:
        other.start()
        assert reached.wait(30)
        if store.dialect == "postgresql":  # it waits for the alias's lock (on SQLite, for the write lock)
            assert wait_until(lambda: _waiting_on_a_lock(store), 30)

    # The other request is let in up to the moment its view of the profile can be stale: it has
    # read what it reads before writing, or is about to write (or to lock the profile).
    def before(conn, cursor, statement: str, *args) -> None:
        if threading.current_thread() is other:
            if statement.startswith(WRITES) or "FOR KEY SHARE" in statement:
                reached.set()
        elif statement.startswith(merging_at) and not other.is_alive() and not reached.is_set():
            let_the_other_request_in()

    def after(conn, cursor, statement: str, *args) -> None:
        if threading.current_thread() is other and statement.startswith("SELECT customers.id"):
            reached.set()

    sa.event.listen(store.engine, "before_cursor_execute", before)
    sa.event.listen(store.engine, "after_cursor_execute", after)
    try:
        with store.engine.connect() as conn:
            merging = conn.begin()
            assert merge_anonymous(conn, store, "anon:v1", "u1", NOW).profiles == 1
            if merging_at == "COMMIT":
                let_the_other_request_in()
            merging.commit()
        other.join(60)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)
        sa.event.remove(store.engine, "after_cursor_execute", after)
    assert outcome == [{"customers": 1, "events": 1, "merged": 0}]
    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(events.c.event_key, events.c.customer_id).order_by(events.c.pk)).all()
        people = conn.execute(sa.select(customers.c.id).order_by(customers.c.id)).scalars().all()
    # The merged event is the customer's; the one stored after the merge starts a new profile.
    assert kept == [("id:e1", "u1"), ("id:e2", "anon:v1")]
    assert people == ["anon:v1", "u1"]


def _stored_or_failed(store, track: dict[str, Any]) -> Any:
    try:
        return store_messages(store, "track", track, NOW)
    except Exception as exc:  # the failure is the test's to show, not the thread's to swallow
        return exc


def test_an_alias_naming_a_forgotten_customer_erases_the_anonymous_profile(store):
    seed(
        store,
        customers=[{"id": "gone", "email": "gone@example.com"}, {"id": "anon:v2", "first_name": "Ann"}],
        events=[{"customer_id": "anon:v2", "type": "page_view", "id": "e1", "occurred_at": NOW}],
    )
    with store.engine.begin() as conn:
        forget_customer(conn, "gone", NOW)
    alias = {"previousId": "v2", "userId": "gone"}
    assert store_messages(store, "alias", alias, NOW) == {"customers": 0, "events": 0, "merged": 1}
    later = {"anonymousId": "v2", "event": "Product Viewed", "timestamp": "2026-06-01T08:59:00Z"}
    assert store_messages(store, "track", later, NOW) == {"customers": 0, "events": 0, "merged": 0}
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(customers.c.id)).all() == []
        assert conn.execute(sa.select(events.c.pk)).all() == []
        assert len(conn.execute(sa.select(forgotten.c.id_hash)).all()) == 2  # the customer, and the profile
