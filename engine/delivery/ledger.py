"""The ledger: who gets which campaign occurrence, and what became of it.

A row is unique per (campaign, customer, occurrence, channel) and is written before anything leaves.
States: pending → sending → sent | failed | unknown; held_out rows are recorded, never contacted.
A pending row with ``not_before`` in the future is deferred (quiet hours).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.core.channels import NO_CHANNEL
from engine.core.status import DeliveryStatus, OccurrencePhase
from engine.messages.coupons import new_code
from engine.store.many_rows import insert_rows
from engine.store.tables import coupons, deliveries, occurrences

LEASE = timedelta(minutes=5)
_RELEASED = datetime(1970, 1, 1)


def worker_id() -> str:
    """host:pid:random — unique per process, and tells a dead local owner from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def row_token() -> str:
    """host:pid:random for the rows one dispatch holds `sending`: the ledger tells which process
    (a `delivery.workers` child has its own pid) holds a row. The host is cut so the token fits
    its 64-character column on any machine (Linux allows 64-character host names)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{os.urandom(4).hex()}"


def _owner_is_dead(claimed_by: str) -> bool:
    host, _, rest = claimed_by.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Claim:
    """An occurrence this worker owns, and the phase it was in when taken."""

    id: int
    campaign: str
    occurrence: datetime
    status: OccurrencePhase
    taken_over: bool


def claim_occurrence(
    engine: Engine, campaign: str, occurrence: datetime, worker: str, now: datetime, lease: timedelta = LEASE
) -> Claim | None:
    """Own an occurrence: create it, or take over one whose owner is gone. None: done, or someone else's."""
    try:
        with engine.begin() as conn:
            new_id = conn.execute(
                sa.insert(occurrences)
                .values(
                    campaign=campaign,
                    occurrence=occurrence,
                    status=OccurrencePhase.PLANNING,
                    claimed_by=worker,
                    claimed_at=now,
                    heartbeat_at=now,
                )
                .returning(occurrences.c.id)
            ).scalar_one()
        return Claim(new_id, campaign, occurrence, OccurrencePhase.PLANNING, taken_over=False)
    except sa.exc.IntegrityError:
        pass
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(occurrences).where(occurrences.c.campaign == campaign, occurrences.c.occurrence == occurrence)
        ).one()
        if row.status == OccurrencePhase.DONE:
            return None
        stale = row.heartbeat_at <= now - lease or row.claimed_by == worker or _owner_is_dead(row.claimed_by)
        if not stale:
            return None
        taken = conn.execute(
            sa.update(occurrences)
            .where(
                occurrences.c.id == row.id,
                occurrences.c.claimed_by == row.claimed_by,
                occurrences.c.heartbeat_at == row.heartbeat_at,
            )
            .values(claimed_by=worker, claimed_at=now, heartbeat_at=now)
        ).rowcount
    return Claim(row.id, campaign, occurrence, row.status, taken_over=True) if taken == 1 else None


def heartbeat(engine: Engine, claim: Claim, worker: str, now: datetime, status: OccurrencePhase | None = None) -> bool:
    """Keep the claim alive (and move its phase); False if another worker has taken it."""
    values: dict[str, Any] = {"heartbeat_at": now}
    if status:
        values["status"] = status
    if status == OccurrencePhase.DONE:
        values["finished_at"] = now
    with engine.begin() as conn:
        return (
            conn.execute(
                sa.update(occurrences)
                .where(occurrences.c.id == claim.id, occurrences.c.claimed_by == worker)
                .values(**values)
            ).rowcount
            == 1
        )


def release(engine: Engine, claim: Claim, worker: str) -> None:
    """Let anyone resume this occurrence at once (deferred rows wait for their hour)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(occurrences)
            .where(occurrences.c.id == claim.id, occurrences.c.claimed_by == worker)
            .values(heartbeat_at=_RELEASED)
        )


def unfinished(conn: Connection, campaigns: Iterable[str]) -> list[tuple[str, datetime]]:
    """Occurrences not done yet (crashed, or holding deferred rows), oldest first."""
    rows = conn.execute(
        sa.select(occurrences.c.campaign, occurrences.c.occurrence)
        .where(occurrences.c.status != OccurrencePhase.DONE, occurrences.c.campaign.in_(list(campaigns)))
        .order_by(occurrences.c.occurrence)
    )
    return [(r.campaign, r.occurrence) for r in rows]


def last_occurrence(conn: Connection, campaign: str) -> datetime | None:
    return conn.execute(
        sa.select(sa.func.max(occurrences.c.occurrence)).where(occurrences.c.campaign == campaign)
    ).scalar()


@dataclass
class PlannedRow:
    customer_id: str
    status: DeliveryStatus  # pending | held_out | skipped
    email: str | None
    not_before: datetime | None
    actions: str  # indexes of the actions that apply, "0,2"
    counts_toward_cap: bool
    variant: str | None = None
    reason: str | None = None  # why a journey step, or a channel the customer refused, was skipped
    exclusive_group: str | None = None
    channel: str = NO_CHANNEL  # email | sms | webhook | none (coupons and tasks only)
    phone: str | None = None


def record_plan(
    conn: Connection,
    campaign: str,
    occurrence: datetime,
    rows: Sequence[PlannedRow],
    coupon_specs: dict[int, Any],
    now: datetime,
) -> int:
    """Write ledger rows (and their coupons, same transaction); rows already there are left alone."""
    if not rows:
        return 0
    values = [
        {
            "campaign": campaign,
            "customer_id": r.customer_id,
            "occurrence": occurrence,
            "status": r.status,
            "email": r.email,
            "not_before": r.not_before,
            "actions": r.actions,
            "counts_toward_cap": r.counts_toward_cap,
            "variant": r.variant,
            "reason": r.reason,
            "exclusive_group": r.exclusive_group,
            "channel": r.channel,
            "phone": r.phone,
            "created_at": now,
            "updated_at": now,
        }
        for r in rows
    ]
    inserted = insert_rows(
        conn,
        deliveries,
        values,
        unique=("campaign", "customer_id", "occurrence", "channel"),
        returning=(deliveries.c.id, deliveries.c.customer_id, deliveries.c.status, deliveries.c.actions),
    )
    insert_rows(conn, coupons, _coupons(campaign, occurrence, inserted, coupon_specs, now))
    return len(inserted)


def _coupons(
    campaign: str, occurrence: datetime, inserted: Sequence[Any], coupon_specs: dict[int, Any], now: datetime
) -> list[dict[str, Any]]:
    """A fresh code for each coupon action of each new pending row (the row that carries them)."""
    issued = []
    for row in inserted:
        if row.status != DeliveryStatus.PENDING:
            continue
        for index in action_indexes(row.actions):
            spec = coupon_specs.get(index)
            if spec is not None:
                issued.append(
                    {
                        "code": new_code(spec.prefix),
                        "delivery_id": row.id,
                        "name": spec.name,
                        "customer_id": row.customer_id,
                        "campaign": campaign,
                        "percent_off": spec.percent_off,
                        "amount_off": spec.amount_off,
                        "created_at": now,
                        "expires_at": occurrence + spec.valid_for,
                    }
                )
    return issued


def action_indexes(actions: str | None) -> list[int]:
    """A ledger row's `actions` column ("0,2": the indexes of the actions that apply) as a list."""
    return [int(i) for i in (actions or "").split(",") if i != ""]


def format_actions(indexes: Iterable[int]) -> str:
    """The inverse of action_indexes."""
    return ",".join(str(i) for i in indexes)


def claim_batch(
    conn: Connection, campaign: str, occurrence: datetime, token: str, now: datetime, limit: int
) -> Sequence[Any]:
    """Move up to `limit` due pending rows to sending under our token, and return them."""
    due = (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.status == DeliveryStatus.PENDING,
            deliveries.c.campaign == campaign,
            deliveries.c.occurrence == occurrence,
            sa.or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= now),
        )
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # A CTE runs once; the same subquery inside IN (...) may be re-run per row and claim
        # more than `limit` rows. SKIP LOCKED lets parallel workers take disjoint batches.
        picked = due.with_for_update(skip_locked=True).cte("due")
        claim = sa.update(deliveries).where(deliveries.c.id == picked.c.id)
    else:
        # SQLite serialises writers: the subquery and the update see the same rows.
        claim = sa.update(deliveries).where(deliveries.c.id.in_(due.scalar_subquery()))
    conn.execute(
        claim.where(deliveries.c.status == DeliveryStatus.PENDING).values(
            status=DeliveryStatus.SENDING, claim=token, updated_at=now
        )
    )
    return conn.execute(
        sa.select(deliveries)
        .where(
            deliveries.c.campaign == campaign,
            deliveries.c.occurrence == occurrence,
            deliveries.c.status == DeliveryStatus.SENDING,
            deliveries.c.claim == token,
        )
        .order_by(deliveries.c.id)
    ).all()


def record_results(
    conn: Connection, results: Iterable[tuple[int, str, str | None, str | None]], token: str, now: datetime
) -> None:
    """(delivery id, status, reason, provider id) for rows we hold."""
    values = [
        {
            "row_id": i,
            "new_status": s,
            "new_reason": r,
            "new_provider": p,
            "new_sent_at": now if s == DeliveryStatus.SENT else None,
        }
        for i, s, r, p in results
    ]
    if not values:
        return
    conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("row_id"), deliveries.c.claim == token)
        .values(
            status=sa.bindparam("new_status"),
            reason=sa.bindparam("new_reason"),
            provider_id=sa.bindparam("new_provider"),
            sent_at=sa.bindparam("new_sent_at"),
            claim=None,
            updated_at=now,
        ),
        values,
    )


def release_rows(conn: Connection, ids: Sequence[int], token: str, now: datetime, reason: str | None = None) -> None:
    """Give rows back as pending (nothing was handed to anyone), noting why they still wait."""
    if ids:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.claim == token)
            .values(status=DeliveryStatus.PENDING, claim=None, updated_at=now, reason=reason, handed_at=None)
        )


def orphans(conn: Connection, campaign: str, occurrence: datetime) -> Sequence[Any]:
    """Rows left in sending by a worker that died (call only while owning the occurrence)."""
    return conn.execute(
        sa.select(deliveries).where(
            deliveries.c.campaign == campaign,
            deliveries.c.occurrence == occurrence,
            deliveries.c.status == DeliveryStatus.SENDING,
        )
    ).all()


def pending_left(conn: Connection, campaign: str, occurrence: datetime) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(
            deliveries.c.campaign == campaign,
            deliveries.c.occurrence == occurrence,
            deliveries.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
        )
    ).scalar_one()


def renew(conn: Connection, claim: Claim, worker: str, now: datetime) -> bool:
    """Extend this worker's lease on the occurrence, in the caller's transaction; False if another
    worker holds it now (then nothing of it is ours to claim or send)."""
    return (
        conn.execute(
            sa.update(occurrences)
            .where(occurrences.c.id == claim.id, occurrences.c.claimed_by == worker)
            .values(heartbeat_at=now)
        ).rowcount
        == 1
    )


def hand_off(conn: Connection, claim: Claim, worker: str, ids: Sequence[int], token: str, now: datetime) -> set[int]:
    """Mark these rows handed to a connector, if this worker still owns them; the ids it may send.

    The fence: a row is ours while it is `sending` under our claim token; a worker that took the
    occurrence over has put it back to pending (new token) or settled it first. The check and the
    mark are one UPDATE, so nothing can slip between them. The occurrence's lease is renewed in the
    same transaction; if another worker holds the occurrence now, nothing is ours."""
    if not renew(conn, claim, worker, now) or not ids:
        return set()
    return set(
        conn.execute(
            sa.update(deliveries)
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.claim == token,
                deliveries.c.status == DeliveryStatus.SENDING,
            )
            .values(handed_at=now)
            .returning(deliveries.c.id)
        ).scalars()
    )
