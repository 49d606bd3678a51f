"""The consent log: append-only, one entry per change of consent with its source. Everything that
changes consent (import, identify, the preference page, one-click, an SMS reply, a webhook, an
operator, forget) appends here in the transaction that makes the change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.core.channels import ConsentChange
from engine.store.tables import consent_log


@dataclass(frozen=True)
class ConsentEntry:
    customer_id: str
    change: ConsentChange
    source: str  # a ConsentSource, with detail where it helps: "import customers.csv"
    old: str | None = None
    new: str | None = None
    channel: str | None = None
    topic: str | None = None
    address: str | None = None


def as_text(value: Any) -> str | None:
    """Values as the log keeps them: booleans as true/false, instants as ISO 8601."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)[:64]


def append(conn: Connection, entries: Sequence[ConsentEntry], at: datetime) -> int:
    """Append entries (one multi-row insert); returns how many."""
    if not entries:
        return 0
    conn.execute(
        sa.insert(consent_log),
        [
            {
                "customer_id": e.customer_id,
                "at": at,
                "channel": e.channel,
                "topic": e.topic,
                "change": str(e.change),
                "old_value": e.old,
                "new_value": e.new,
                "source": e.source[:255],
                "address": e.address,
            }
            for e in entries
        ],
    )
    return len(entries)


def log_for(conn: Connection, customer_id: str) -> list[dict[str, Any]]:
    """One customer's consent history, oldest first."""
    rows = conn.execute(
        sa.select(consent_log)
        .where(consent_log.c.customer_id == customer_id)
        .order_by(consent_log.c.at, consent_log.c.id)
    )
    return [dict(r._mapping) for r in rows]
