"""Run one campaign occurrence: claim it, write the ledger, render, hand to connectors, record.

Phase 1 writes every ledger row (with its coupons) before anything leaves. Phase 2 takes due
rows in batches under a claim token, sends them, and records each outcome. A worker that died
leaves rows in `sending`: whoever takes the occurrence over asks the connector what left and
marks the rest `unknown` — never resent blindly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from connectors.email.base import FAILED, RETRY, SENT, UNKNOWN, ConnectorFatal, OutgoingEmail

from . import ledger
from .context import build_contexts
from .errors import RuntimeFailure
from .loader import Workspace
from .model import Campaign, CouponAction, EmailAction, TaskAction, action_when
from .outputs import Outputs
from .plan import HELD_OUT, TARGETED, Planner
from .quiet import release_time
from .render import RenderError, render_file, render_string
from .compiler import compile_condition
from .store import Store, dialect_insert
from .store.tables import customers, tasks
from .message import build_email, unsubscribe_link
from .suppressions import suppressed_among
from .unsubscribe import sign

PLAN_BATCH = 2_000


class Stopped(Exception):
    """Asked to stop between two batches; what is written stays, the rest resumes later."""


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass
class Runner:
    """Everything a delivery run needs, passed in (the clock too, so tests can drive it)."""

    workspace: Workspace
    store: Store
    outputs: Outputs
    clock: Callable[[], datetime]
    worker: str = field(default_factory=ledger.worker_id)
    should_stop: Callable[[], bool] = lambda: False
    batch_size: int = 200

    def now(self) -> datetime:
        return naive_utc(self.clock())


@dataclass
class OccurrenceReport:
    campaign: str
    occurrence: datetime
    ran: bool = False
    note: str = ""
    matched: int = 0
    recorded: int = 0
    held_out: int = 0
    deferred: int = 0
    waiting: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "occurrence": self.occurrence.replace(tzinfo=timezone.utc).isoformat(),
                "ran": self.ran, "note": self.note, "matched": self.matched, "recorded": self.recorded,
                "held_out": self.held_out, "deferred": self.deferred, "waiting": self.waiting,
                "sent": self.counts.get(SENT, 0), "failed": self.counts.get(FAILED, 0),
                "unknown": self.counts.get(UNKNOWN, 0)}


# --- phase 1 ---------------------------------------------------------------------------------

def _when_sets(conn: sa.Connection, campaign: Campaign, ids: list[str], planner: Planner) -> dict[int, set[str]]:
    """For each action with `when`, the customers of this batch for whom it holds (one query each)."""
    found: dict[int, set[str]] = {}
    for index, action in enumerate(campaign.actions):
        when = action_when(action)
        if when is not None:
            query = sa.select(customers.c.id).where(customers.c.id.in_(ids),
                                                    compile_condition(when, planner.context()))
            found[index] = set(conn.execute(query).scalars())
    return found


def _plan_rows(runner: Runner, campaign: Campaign, at: datetime, batch: list[Any], when: dict[int, set[str]]):
    quiet = runner.workspace.config.limits.quiet_hours if campaign.sends_email else None
    rows = []
    for item in batch:
        applies = [i for i in range(len(campaign.actions)) if i not in when or item.customer_id in when[i]]
        not_before = None
        if quiet is not None and item.outcome == TARGETED:
            opening = release_time(at, item.timezone or runner.workspace.config.timezone, quiet.start, quiet.end)
            not_before = naive_utc(opening) if opening else None
        rows.append(ledger.PlannedRow(
            customer_id=item.customer_id, status=ledger.PENDING if item.outcome == TARGETED else ledger.HELD_OUT,
            email=item.email, not_before=not_before, actions=",".join(map(str, applies)),
            counts_toward_cap=campaign.sends_email and item.outcome == TARGETED))
    return rows


def materialize(runner: Runner, campaign: Campaign, at: datetime, claim: ledger.Claim,
                report: OccurrenceReport) -> None:
    """Phase 1: the whole audience through the planner into the ledger, batch by batch."""
    coupon_specs = {i: a.coupon for i, a in enumerate(campaign.actions) if isinstance(a, CouponAction)}
    occurrence = naive_utc(at)
    with runner.store.engine.connect() as reader:
        planner = Planner(conn=reader, config=runner.workspace.config, segments=runner.workspace.segments, at=at)
        batch: list[Any] = []

        def flush() -> None:
            chosen = [b for b in batch if b.outcome in (TARGETED, HELD_OUT)]
            when = _when_sets(reader, campaign, [b.customer_id for b in chosen], planner) if chosen else {}
            rows = _plan_rows(runner, campaign, at, chosen, when)
            with runner.store.engine.begin() as writer:
                report.recorded += ledger.record_plan(writer, campaign.campaign, occurrence, rows, coupon_specs,
                                                      runner.now())
            report.held_out += sum(1 for r in rows if r.status == ledger.HELD_OUT)
            report.deferred += sum(1 for r in rows if r.not_before is not None and r.not_before > runner.now())
            if not ledger.heartbeat(runner.store.engine, claim, runner.worker, runner.now()):
                raise RuntimeFailure(f"{campaign.campaign}: another worker took over this occurrence")
            batch.clear()

        for item in planner.classify(campaign):
            report.matched += 1
            batch.append(item)
            if len(batch) >= PLAN_BATCH:
                flush()
                if runner.should_stop():
                    reader.rollback()
                    raise Stopped()
        flush()
        reader.rollback()


# --- phase 2 ---------------------------------------------------------------------------------

@dataclass
class _Prepared:
    emails: list[OutgoingEmail] = field(default_factory=list)
    task_rows: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[int, tuple[str, str | None]] = field(default_factory=dict)   # delivery id → (status, reason)


def _emails(campaign: Campaign, row: Any) -> bool:
    indexes = [int(i) for i in (row.actions or "").split(",") if i]
    return any(isinstance(campaign.actions[i], EmailAction) for i in indexes if i < len(campaign.actions))


def _prepare(runner: Runner, campaign: Campaign, at: datetime, rows: list[Any], conn: sa.Connection) -> _Prepared:
    env = runner.workspace.environment()
    config = runner.workspace.config
    coupons = ledger.coupons_for(conn, [r.id for r in rows])
    contexts = build_contexts(conn, [r.customer_id for r in rows], at, campaign,
                              {r.customer_id: coupons.get(r.id, {}) for r in rows})
    prepared = _Prepared()
    # An unsubscribe, bounce or spam report may have come in since this occurrence was planned.
    blocked = suppressed_among(conn, [r.email for r in rows if r.email])
    for row in rows:
        context = contexts.get(row.customer_id)
        if context is None:
            prepared.outcome[row.id] = (FAILED, "customer no longer in the store")
            continue
        if row.email and row.email.lower() in blocked and _emails(campaign, row):
            prepared.outcome[row.id] = (FAILED, f"address suppressed ({blocked[row.email.lower()]}) since planning")
            continue
        applies = set(int(i) for i in (row.actions or "").split(",") if i)
        token = sign(runner.outputs.secret, row.customer_id, row.email or "", campaign.campaign, runner.clock())
        context["unsubscribe_url"] = unsubscribe_link(config.email.unsubscribe_url, token)
        try:
            for index, action in enumerate(campaign.actions):
                if index not in applies:
                    continue
                if isinstance(action, EmailAction):
                    if not row.email:
                        raise RenderError("customer has no email address")
                    body = render_file(env, action.email.template, context)
                    prepared.emails.append(build_email(
                        delivery_id=row.id, sender=action.email.from_ or config.email.from_, to=row.email,
                        subject=render_string(env, action.email.subject, context), body=body,
                        is_html=action.email.template.endswith((".html", ".htm", ".html.j2", ".htm.j2")),
                        unsubscribe_url=context["unsubscribe_url"], campaign=campaign.campaign))
                elif isinstance(action, TaskAction):
                    spec = action.task
                    prepared.task_rows.append({
                        "delivery_id": row.id, "action_index": index, "customer_id": row.customer_id,
                        "campaign": campaign.campaign, "queue": spec.queue,
                        "title": render_string(env, spec.title, context).strip(),
                        "body": render_string(env, spec.body, context) if spec.body else None,
                        "due_at": naive_utc(at) + spec.due_in if spec.due_in else None,
                        "status": "open", "created_at": runner.now()})
        except RenderError as exc:
            prepared.outcome[row.id] = (FAILED, f"template: {exc}")
            prepared.emails = [e for e in prepared.emails if e.delivery_id != row.id]
            prepared.task_rows = [t for t in prepared.task_rows if t["delivery_id"] != row.id]
    return prepared


def _hand_off_tasks(runner: Runner, task_rows: list[dict[str, Any]], prepared: _Prepared) -> None:
    """Store tasks (once per delivery and action), then give new ones to the sink."""
    from connectors.tasks.sinks import SinkError
    if not task_rows:
        return
    with runner.store.engine.begin() as conn:
        insert = dialect_insert(conn.dialect.name, tasks).on_conflict_do_nothing(
            index_elements=[tasks.c.delivery_id, tasks.c.action_index])
        conn.execute(insert, task_rows)
        stored = conn.execute(sa.select(tasks).where(
            tasks.c.delivery_id.in_({t["delivery_id"] for t in task_rows}), tasks.c.handoff != "done")).all()
    for task in stored:
        try:
            runner.outputs.sink.handoff(dict(task._mapping))
            state, error = "done", None
        except SinkError as exc:
            state, error = "failed", str(exc)
            prepared.outcome.setdefault(task.delivery_id, (FAILED, f"task sink: {exc}"))
        with runner.store.engine.begin() as conn:
            conn.execute(sa.update(tasks).where(tasks.c.id == task.id).values(handoff=state, handoff_error=error))


def _send_batch(runner: Runner, campaign: Campaign, at: datetime, rows: list[Any], token: str) -> dict[str, int]:
    with runner.store.engine.connect() as conn:
        prepared = _prepare(runner, campaign, at, rows, conn)
        conn.rollback()
    _hand_off_tasks(runner, prepared.task_rows, prepared)
    results: dict[int, tuple[str, str | None, str | None]] = {}
    stopped: str | None = None
    if prepared.emails:
        try:
            sent = runner.outputs.email().send(prepared.emails)
        except (ConnectorFatal, RuntimeFailure) as exc:
            # Only what reached an outcome is recorded; everything else did not leave.
            sent, stopped = getattr(exc, "partial", []), str(exc)
        results.update({r.delivery_id: (r.status, r.reason, r.provider_id) for r in sent})
    emailed = {e.delivery_id for e in prepared.emails}
    # Only messages handed to the connector can be retried: refused, or never reached it.
    retry = {i for i in emailed if results.get(i, (RETRY,))[0] == RETRY and (i in results or stopped is not None)}
    if retry:
        with runner.store.engine.begin() as conn:
            for row_id in sorted(retry):
                reason = results[row_id][1] if row_id in results else stopped
                ledger.release_rows(conn, [row_id], token, runner.now(),
                                    reason=f"not sent yet, retried on the next run: {reason}")
    final = []
    for row in rows:
        if row.id in retry:
            continue
        if row.id in results:
            status, reason, provider = results[row.id]
            if status == SENT and row.id in prepared.outcome:
                # The email left; its task did not reach the sink. Still `sent` (so the cooldown
                # holds and nobody is emailed twice); the task is kept, marked, in the store.
                reason = prepared.outcome[row.id][1]
            final.append((row.id, status, reason, provider))
        elif row.id in prepared.outcome:
            status, reason = prepared.outcome[row.id]
            final.append((row.id, status, reason, None))
        else:
            final.append((row.id, SENT, None if row.actions else "no action applied", None))
    with runner.store.engine.begin() as conn:
        ledger.record_results(conn, final, token, runner.now())
    counts: dict[str, int] = {}
    for _, status, _, _ in final:
        counts[status] = counts.get(status, 0) + 1
    if stopped is not None:
        raise RuntimeFailure(f"{campaign.campaign}: sending stopped: {stopped}")
    return counts


def reconcile(runner: Runner, campaign: Campaign | None, claim: ledger.Claim) -> None:
    """Rows a dead worker left in `sending`: sent if the connector knows it left, pending if it
    certainly did not (or carried no email), otherwise unknown."""
    with runner.store.engine.begin() as conn:
        for row in ledger.orphans(conn, claim.campaign, claim.occurrence):
            emails = campaign is not None and _emails(campaign, row)
            verdict = runner.outputs.email().was_sent(row.id) if emails else False
            status, reason = {True: (SENT, None), False: (ledger.PENDING, None),
                              None: (UNKNOWN, "the sender stopped while this message was in flight; "
                                              "it may have been delivered")}[verdict]
            conn.execute(sa.update(ledger.deliveries).where(ledger.deliveries.c.id == row.id,
                                                            ledger.deliveries.c.status == ledger.SENDING)
                         .values(status=status, reason=reason, claim=None, updated_at=runner.now(),
                                 sent_at=runner.now() if status == SENT else None))


def dispatch(runner: Runner, campaign: Campaign, at: datetime, claim: ledger.Claim,
             report: OccurrenceReport) -> None:
    """Phase 2: send due rows batch by batch until none is due or we are asked to stop."""
    token = f"{runner.worker}:{os.urandom(4).hex()}"
    while not runner.should_stop():
        with runner.store.engine.begin() as conn:
            rows = ledger.claim_batch(conn, claim.campaign, claim.occurrence, token, runner.now(), runner.batch_size)
        if not rows:
            return
        for status, number in _send_batch(runner, campaign, at, rows, token).items():
            report.counts[status] = report.counts.get(status, 0) + number
        if not ledger.heartbeat(runner.store.engine, claim, runner.worker, runner.now()):
            raise RuntimeFailure(f"{campaign.campaign}: another worker took over this occurrence")


def run_occurrence(runner: Runner, campaign: Campaign, at: datetime) -> OccurrenceReport:
    """Deliver one occurrence of a campaign, exactly once whatever else is running or has crashed."""
    occurrence = naive_utc(at)
    report = OccurrenceReport(campaign=campaign.campaign, occurrence=occurrence)
    claim = ledger.claim_occurrence(runner.store.engine, campaign.campaign, occurrence, runner.worker, runner.now())
    if claim is None:
        report.note = "already done, or being run by another worker"
        return report
    report.ran = True
    if claim.taken_over:
        reconcile(runner, campaign, claim)
    if claim.status == ledger.PLANNING:
        try:
            materialize(runner, campaign, at, claim, report)
        except Stopped:
            report.note = "stopped while planning; resumes on the next run"
            ledger.release(runner.store.engine, claim, runner.worker)
            return report
        ledger.heartbeat(runner.store.engine, claim, runner.worker, runner.now(), status=ledger.DISPATCHING)
    dispatch(runner, campaign, at, claim, report)
    with runner.store.engine.connect() as conn:
        left = ledger.pending_left(conn, claim.campaign, claim.occurrence)
    report.waiting = left
    if left == 0:
        ledger.heartbeat(runner.store.engine, claim, runner.worker, runner.now(), status=ledger.DONE)
    else:
        report.note = f"{left} waiting (quiet hours in the customer's time zone, or stopped early)"
        ledger.release(runner.store.engine, claim, runner.worker)
    return report
