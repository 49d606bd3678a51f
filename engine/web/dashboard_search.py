"""The dashboard's look-ups for support staff: a customer by id (or its start) or email address,
one customer's timeline (as `nudge customer`), and the ledger searched by campaign, status,
customer and age (as `nudge deliveries`)."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.durations import parse_duration
from engine.core.errors import UserInputError
from engine.core.status import DeliveryStatus
from engine.reports.dashboard_html import Frame, message_page, render
from engine.reports.timeline import campaigns_in_ledger, customer_timeline, list_deliveries
from engine.store.tables import customers as customer_table
from engine.workspace.loader import Workspace

FOUND_LIMIT = 50
DELIVERY_LIMIT = 500
SPANS = ("24h", "7d", "30d", "90d", "365d", "all")


def customers(conn: Connection, frame: Frame, query: str) -> str:
    """Customers whose id is `query` or starts with it, or whose address it is; the first 50 by id."""
    found = []
    if query:
        c = customer_table.c
        match = sa.or_(c.id == query, c.id.startswith(query, autoescape=True), c.email.in_({query, query.lower()}))
        rows = conn.execute(
            sa.select(c.id, c.first_name, c.last_name, c.email, c.country, c.locale)
            .where(match)
            .order_by(c.id)
            .limit(FOUND_LIMIT)
        )
        found = [{**r._mapping, "name": " ".join(p for p in (r.first_name, r.last_name) if p)} for r in rows]
    return render("customers.html.j2", frame, "Customers", "customers", query=query, found=found, limit=FOUND_LIMIT)


def customer(conn: Connection, frame: Frame, workspace: Workspace, customer_id: str) -> tuple[str, int]:
    journeys = [loaded.campaign for loaded in workspace.campaigns.values() if loaded.campaign.steps]
    topics = tuple(workspace.config.topics) or (workspace.config.default_topic,)
    try:
        found = customer_timeline(conn, customer_id, journeys, frame.zone, topics)
    except UserInputError:
        return message_page(frame, "Not found", f"No customer with the id {customer_id!r} in the store."), 404
    return render("customer.html.j2", frame, f"Customer {customer_id}", "customer", t=found), 200


def deliveries(conn: Connection, frame: Frame, args: Mapping[str, str]) -> str:
    chosen = {key: args.get(key, "").strip() for key in ("campaign", "status", "customer", "since")}
    if chosen["since"] not in SPANS:
        chosen["since"] = "30d"
    span = None if chosen["since"] == "all" else parse_duration(chosen["since"])
    status = chosen["status"] if chosen["status"] in set(DeliveryStatus) else None
    found = list_deliveries(
        conn, chosen["campaign"] or None, status, span, frame.now, DELIVERY_LIMIT, chosen["customer"] or None
    )
    return render(
        "deliveries.html.j2",
        frame,
        "Deliveries",
        "deliveries",
        campaigns=campaigns_in_ledger(conn),
        statuses=[str(s) for s in DeliveryStatus],
        spans=SPANS,
        chosen=chosen,
        found=found,
        limit=DELIVERY_LIMIT,
    )
