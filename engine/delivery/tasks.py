"""Follow-up tasks: stored once per (delivery, action), then handed to the configured sink."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from connectors.api import SinkError, TaskSink
from engine.core.clock import naive_utc
from engine.core.errors import Problem, UserInputError
from engine.core.status import Handoff, TaskStatus
from engine.store.many_rows import insert_rows
from engine.store.tables import tasks


def store_and_hand_off(engine: Engine, sink: TaskSink, task_rows: Sequence[dict[str, Any]]) -> dict[int, str]:
    """Store tasks (a retry never makes a second one), give the ones not yet handed over to the sink.

    Returns {delivery id: reason} for deliveries whose task the sink refused."""
    refused: dict[int, str] = {}
    if not task_rows:
        return refused
    with engine.begin() as conn:
        insert_rows(conn, tasks, task_rows, unique=("delivery_id", "action_index"))
        stored = conn.execute(
            sa.select(tasks).where(
                tasks.c.delivery_id.in_({t["delivery_id"] for t in task_rows}), tasks.c.handoff != Handoff.DONE
            )
        ).all()
    for task in stored:
        try:
            sink.handoff(dict(task._mapping))
            state, error = Handoff.DONE, None
        except SinkError as exc:
            state, error = Handoff.FAILED, str(exc)
            refused.setdefault(task.delivery_id, f"task sink: {exc}")
        with engine.begin() as conn:
            conn.execute(sa.update(tasks).where(tasks.c.id == task.id).values(handoff=state, handoff_error=error))
    return refused


def task_row(
    delivery_id: int, customer_id: str, campaign: str, rendered: Any, at: datetime, now: datetime
) -> dict[str, Any]:
    """The tasks-table row for one rendered task (`at` and `now` naive UTC)."""
    return {
        "delivery_id": delivery_id,
        "action_index": rendered.index,
        "customer_id": customer_id,
        "campaign": campaign,
        "queue": rendered.queue,
        "title": rendered.title,
        "body": rendered.body,
        "due_at": at + rendered.due_in if rendered.due_in else None,
        "status": TaskStatus.OPEN,
        "created_at": now,
    }


def close_tasks(conn: Connection, ids: Iterable[int], now: datetime) -> None:
    """Mark tasks done; an unknown id is the operator's mistake and changes nothing."""
    wanted = sorted(set(ids))
    found = set(conn.execute(sa.select(tasks.c.id).where(tasks.c.id.in_(wanted))).scalars())
    missing = [i for i in wanted if i not in found]
    if missing:
        raise UserInputError([Problem("<tasks>", None, None, f"no task with id {i}") for i in missing])
    conn.execute(
        sa.update(tasks)
        .where(tasks.c.id.in_(wanted), tasks.c.status != TaskStatus.DONE)
        .values(status=TaskStatus.DONE, done_at=naive_utc(now))
    )
