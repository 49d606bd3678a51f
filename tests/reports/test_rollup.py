"""The dashboard keeps settled occurrences' counts and measurements between requests: its report
stays `nudge report`'s as occurrences are added, unknown deliveries are confirmed and late goal
events arrive, while a second request counts only the occurrences that may still change."""

from __future__ import annotations

import functools
from datetime import timedelta

import sqlalchemy as sa

import engine.reports.rollup as rollup
from engine.reports.summary import build_report
from engine.rules.config import resolve_store_url
from engine.store import open_store
from engine.store.tables import deliveries, events
from engine.workspace.loader import load_workspace
from tests.support.dashboard import AT, nudge, shop


def reports(root, kept, now):
    """The report through the kept parts, and counted afresh, for every campaign."""
    workspace = load_workspace(root)
    rules = [c.campaign for c in workspace.campaigns.values()]
    names = [c.campaign for c in rules]
    store = open_store(resolve_store_url(workspace.config, root), create=False)
    with store.engine.connect() as conn:
        kept_report = build_report(conn, rules, names, source=functools.partial(kept.parts, now=now)).as_json()
        live = build_report(conn, rules, names).as_json()
    store.dispose()
    return kept_report, live


def test_kept_parts_stay_the_live_report_as_the_ledger_and_events_change(workspace_dir, monkeypatch):
    root = shop(workspace_dir)
    kept, now = rollup.KeptParts(), AT + timedelta(days=30)
    first, live = reports(root, kept, now)
    assert first == live and first["campaigns"]
    counted: list = []
    original = rollup.measure_occurrences

    def spy(*args, **kwargs):
        if len(args) > 5:  # the kept parts' own counting (the live report's is all of it)
            counted.append(args[5])
        return original(*args, **kwargs)

    monkeypatch.setattr(rollup, "measure_occurrences", spy)
    again, live = reports(root, kept, now)
    assert again == live and counted == []  # everything settled was kept: nothing measured again
    # A new occurrence (its goal window still open): counted, and only it.
    nudge(root, "run", "--at", (AT + timedelta(days=28)).isoformat())
    later, live = reports(root, kept, now)
    newest = (AT + timedelta(days=28)).replace(tzinfo=None)
    assert later == live and counted and all(only == [newest] for only in counted)
    # An unknown delivery the provider confirms, and a purchase imported late into a kept window.
    store = open_store(resolve_store_url(load_workspace(root, need_rules=False).config, root), create=False)
    sent = sa.select(deliveries).where(deliveries.c.status == "sent", deliveries.c.occurrence < AT.replace(tzinfo=None))
    with store.engine.begin() as conn:
        row = conn.execute(sent.order_by(deliveries.c.occurrence.desc()).limit(1)).one()
        early = conn.execute(sent.order_by(deliveries.c.occurrence).limit(1)).one()
        assert early.occurrence < row.occurrence
        conn.execute(sa.update(deliveries).where(deliveries.c.id == row.id).values(status="unknown"))
    assert reports(root, kept, now)[0] == reports(root, kept, now)[1]  # changing rows: counted afresh
    with store.engine.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.id == row.id).values(status="sent", reason="resolved: x"))
        conn.execute(
            sa.insert(events).values(
                event_key="late",
                customer_id=early.customer_id,
                type="purchase",
                occurred_at=early.occurrence + timedelta(hours=2),
                properties={"amount": 1000.0},
            )
        )
    store.dispose()
    stale, live = reports(root, kept, now)
    assert stale["campaigns"] != live["campaigns"]  # the late purchase: not seen until the refresh
    monkeypatch.setattr(rollup, "REFRESH_PER_REQUEST", 10_000)
    refreshed, live = reports(root, kept, now + rollup.REFRESH + timedelta(minutes=1))
    assert refreshed == live
