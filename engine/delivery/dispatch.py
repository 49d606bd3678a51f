"""Phase 2 of an occurrence: claim due ledger rows in batches, render, hand to the connectors,
record each outcome. Only what reached an outcome is recorded; the rest stays pending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connectors.api import ConnectorFatal, SendResult, SendStatus
from engine.core.channels import NO_CHANNEL, Channel
from engine.core.clock import naive_utc
from engine.core.errors import RenderError, RuntimeFailure
from engine.core.status import DeliveryStatus
from engine.delivery import issued, ledger
from engine.delivery.handoff import HandOffGate
from engine.delivery.outgoing import address_of, build_messages
from engine.delivery.runner import OccurrenceReport, Runner
from engine.delivery.suppressions import suppress, suppressed_among
from engine.delivery.tasks import store_and_hand_off, task_row
from engine.messages.actions import reads, render_actions
from engine.messages.context import build_contexts
from engine.messages.email import links
from engine.messages.shop import Shop
from engine.messages.unsubscribe import sign
from engine.rules.campaign import Campaign
from engine.rules.journey import journey_of

# One outcome to record: (delivery id, status, reason, provider id)
Result = tuple[int, str, str | None, str | None]


@dataclass
class _Prepared:
    messages: dict[Channel, list[Any]] = field(default_factory=dict)  # what each channel's connector sends
    task_rows: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # delivery id → (status, reason)
    addresses: dict[int, str] = field(default_factory=dict)  # delivery id → the address it goes to

    @property
    def handed(self) -> set[int]:
        return {m.delivery_id for batch in self.messages.values() for m in batch}


def _prepare_one(
    runner: Runner, campaign: Campaign, at: datetime, row: Any, context: dict[str, Any], prepared: _Prepared
) -> None:
    config = runner.workspace.config
    token = sign(runner.outputs.secret, row.customer_id, row.email or "", campaign.campaign, runner.clock())
    context.update(links(config.email.unsubscribe_base, token))
    rendered = render_actions(
        runner.workspace.environment(),
        campaign,
        context,
        default_sender=config.email.from_,
        applies=set(ledger.action_indexes(row.actions)),
        variant=row.variant,
        opt_out=not config.topic_required(campaign.topic or config.default_topic),
    )
    built = build_messages(runner, row, rendered, context)
    if built:
        prepared.messages.setdefault(Channel(row.channel), []).extend(built)
        address = address_of(row)
        if address:
            prepared.addresses[row.id] = address
    prepared.task_rows += [
        task_row(row.id, row.customer_id, campaign.campaign, task, naive_utc(at), runner.now())
        for task in rendered.tasks
    ]


def _prepare(
    runner: Runner, campaign: Campaign, at: datetime, rows: Sequence[Any], conn: sa.Connection, shop: Shop | None
) -> _Prepared:
    ids = [r.customer_id for r in rows]
    coupons = issued.coupons_for(conn, campaign.campaign, naive_utc(at), ids)
    step = journey_of(campaign)
    earlier = issued.earlier_coupons(conn, step.step_names[: step.index], ids) if step else {}
    contexts = build_contexts(
        conn,
        ids,
        at,
        campaign,
        {r.customer_id: {**earlier.get(r.customer_id, {}), **coupons.get(r.customer_id, {})} for r in rows},
        segments=runner.workspace.segments,
        need_last=reads(runner.workspace.environment(), campaign, "last"),
        shop=shop,
    )
    prepared = _Prepared()
    # An unsubscribe, STOP, bounce or spam report may have come in since this occurrence was planned.
    blocked = suppressed_among(conn, [a for r in rows if (a := address_of(r)) and r.channel != NO_CHANNEL])
    for row in rows:
        context = contexts.get(row.customer_id)
        address = address_of(row)
        if context is None:
            prepared.outcome[row.id] = (DeliveryStatus.FAILED, "customer no longer in the store")
        elif address and address in blocked and row.channel != NO_CHANNEL:
            noun = "number" if row.channel == Channel.SMS else "address"
            prepared.outcome[row.id] = (DeliveryStatus.FAILED, f"{noun} suppressed ({blocked[address]}) since planning")
        else:
            try:
                _prepare_one(runner, campaign, at, row, dict(context), prepared)
            except RenderError as exc:
                prepared.outcome[row.id] = (DeliveryStatus.FAILED, f"template: {exc}")
    return prepared


def _send(gate: HandOffGate, prepared: _Prepared) -> tuple[dict[int, SendResult], str | None]:
    """Each channel's messages through its connector: results by delivery id, and why sending
    stopped (None if it did not). A channel that stops does not keep the others from sending."""
    results: dict[int, SendResult] = {}
    stopped: str | None = None
    for channel, batch in prepared.messages.items():
        try:
            sent = gate.runner.outputs.connector(channel).send(batch, gate)
        except (ConnectorFatal, RuntimeFailure) as exc:
            # Only what reached an outcome is recorded; everything else did not leave.
            sent, stopped = getattr(exc, "partial", []), stopped or str(exc)
        results.update((r.delivery_id, r) for r in sent if r.status != SendStatus.NOT_OURS)
    return results, stopped


def _final(rows: Sequence[Any], prepared: _Prepared, results: dict[int, SendResult], retry: set[int]) -> list[Result]:
    final: list[Result] = []
    for row in rows:
        if row.id in retry:
            continue
        if row.id in results:
            result = results[row.id]
            reason = result.reason
            if result.status == SendStatus.SENT and row.id in prepared.outcome:
                # The email left; its task did not reach the sink. Still `sent` (so the cooldown
                # holds and nobody is emailed twice); the task is kept, marked, in the store.
                reason = prepared.outcome[row.id][1]
            final.append((row.id, str(result.status), reason, result.provider_id))
        elif row.id in prepared.outcome:
            status, reason = prepared.outcome[row.id]
            final.append((row.id, status, reason, None))
        else:
            final.append((row.id, DeliveryStatus.SENT, None if row.actions else "no action applied", None))
    return final


def send_batch(
    runner: Runner,
    campaign: Campaign,
    at: datetime,
    rows: Sequence[Any],
    claim: ledger.Claim,
    token: str,
    shop: Shop | None = None,
) -> dict[str, int]:
    """Render, hand over and record one claimed batch; counts by final status. `shop`: the
    occurrence's product caches (recommendation rankings are the same for all its batches)."""
    with runner.store.engine.connect() as conn:
        prepared = _prepare(runner, campaign, at, rows, conn, shop)
        conn.rollback()
    # A row that failed to render added no email and no task, so what is prepared is all sendable.
    refused = store_and_hand_off(runner.store.engine, runner.outputs.sink, prepared.task_rows)
    for delivery_id, why in refused.items():
        prepared.outcome.setdefault(delivery_id, (DeliveryStatus.FAILED, why))
    gate = HandOffGate(runner, claim, token)
    results, stopped = _send(gate, prepared)
    emailed = prepared.handed - gate.refused
    # Only messages handed to the connector can be retried: refused, or never reached it.
    retry = {
        i for i in emailed if (i in results and results[i].status == SendStatus.RETRY) or (i not in results and stopped)
    }
    if retry:
        with runner.store.engine.begin() as conn:
            for row_id in sorted(retry):
                reason: str | None = results[row_id].reason if row_id in results else stopped
                ledger.release_rows(
                    conn, [row_id], token, runner.now(), reason=f"not sent yet, retried on the next run: {reason}"
                )
    final = _final([r for r in rows if r.id not in gate.refused], prepared, results, retry)
    bad = {prepared.addresses[i] for i, r in results.items() if r.bad_address and i in prepared.addresses}
    with runner.store.engine.begin() as conn:
        ledger.record_results(conn, final, token, runner.now())
        if bad:
            suppress(conn, bad, "invalid address", "connector", runner.clock())
    counts: dict[str, int] = {}
    for _, status, _, _ in final:
        counts[status] = counts.get(status, 0) + 1
    if gate.refused:
        # Stalled past the lease: another worker owns this occurrence now. Rows still under our
        # token (claimed after the takeover) go back at once instead of waiting for a reconcile.
        with runner.store.engine.begin() as conn:
            ledger.release_rows(conn, sorted(gate.refused), token, runner.now())
        raise RuntimeFailure(f"{campaign.campaign}: another worker took over this occurrence")
    if stopped is None and retry:
        # The provider refused for now (down, rate-limited, greylisting): claiming the same rows
        # again at once would only hammer it. The occurrence resumes on the next run or tick.
        first = results[min(retry)].reason if min(retry) in results else None
        stopped = f"{len(retry)} messages not accepted yet ({first or 'try later'})"
    if stopped is not None:
        raise RuntimeFailure(f"{campaign.campaign}: sending stopped: {stopped}")
    return counts


def dispatch(runner: Runner, campaign: Campaign, at: datetime, claim: ledger.Claim, report: OccurrenceReport) -> None:
    """Send due rows batch by batch until none is due or we are asked to stop."""
    token = ledger.row_token()
    shop = Shop(at)
    while not runner.should_stop():
        with runner.store.engine.begin() as conn:
            # Renewed in the claim's own transaction: a worker that lost the occurrence (stalled
            # past its lease) claims nothing more of it.
            if not ledger.renew(conn, claim, runner.worker, runner.now()):
                raise RuntimeFailure(f"{campaign.campaign}: another worker took over this occurrence")
            rows = ledger.claim_batch(conn, claim.campaign, claim.occurrence, token, runner.now(), runner.batch_size)
        if not rows:
            return
        report.add(send_batch(runner, campaign, at, rows, claim, token, shop))
        runner.progress(campaign.campaign, "sent", sum(report.counts.values()))
