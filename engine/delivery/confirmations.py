"""Double opt-in (config.yaml `consent.double_opt_in`): one confirmation email per address, with a
signed /confirm/TOKEN link (engine.web.preferences answers it).

A system message, with the ledger's guarantees: ledger rows of campaign `system/confirm-email`
(email, never counted by the frequency cap, never held out) planned for everyone who needs one in
one INSERT ... SELECT, under a planning lock so two daemons never plan the same address twice, then
sent with dispatch's hand-off fence (ledger.hand_off through HandOffGate) and settled after a crash
by reconcile. A customer needs one when opted in to email, not confirmed, not unsubscribed, the
address not suppressed, and no confirmation row holds that address yet (a new address gets its own)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.api import ConnectorFatal, OutgoingEmail, SendResult, SendStatus
from engine.core.channels import Channel
from engine.core.clock import naive_utc
from engine.core.errors import RenderError, RuntimeFailure
from engine.core.locales import chain
from engine.core.status import DeliveryStatus, OccurrencePhase
from engine.delivery import ledger
from engine.delivery.handoff import HandOffGate
from engine.delivery.reconcile import reconcile
from engine.delivery.runner import OccurrenceReport, Runner
from engine.delivery.suppressions import suppress, suppressed_among
from engine.messages.email import build_email, links, page_link
from engine.messages.email_html import render_email_body
from engine.messages.formatting import rendering_locale, settings_of
from engine.messages.unsubscribe import sign
from engine.rules.actions import EmailAction
from engine.rules.campaign import Campaign
from engine.store.locks import exclusive
from engine.store.tables import customers, deliveries, suppressions

CONFIRM_CAMPAIGN = "system/confirm-email"
TEMPLATE = "confirm_email.html.j2"
SUBJECTS = {"en": "Please confirm your email address", "zh": "请确认您的电子邮件地址"}
_PLAN_LOCK = f"plan:{CONFIRM_CAMPAIGN}"
_ACTIONS = "0"  # the one email action of the system campaign below


def _system_campaign() -> Campaign:
    """The confirmation as a campaign of one email action: what reconcile asks of a ledger row's campaign."""
    action = EmailAction.model_validate({"email": {"template": TEMPLATE, "subject": SUBJECTS["en"]}})
    # Not a rule file (its name has a slash, it has no audience): built without validation.
    nobody: Any = None
    return Campaign.model_construct(campaign=CONFIRM_CAMPAIGN, audience=nobody, actions=[action], steps=None)


def _needing() -> list[Any]:
    """Who needs a confirmation now, as SQL conditions on `customers`."""
    address = sa.func.lower(customers.c.email)
    asked = (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.campaign == CONFIRM_CAMPAIGN,
            deliveries.c.customer_id == customers.c.id,
            sa.func.lower(deliveries.c.email) == address,
        )
        .exists()
    )
    suppressed = sa.select(suppressions.c.email).where(suppressions.c.email == address).exists()
    return [
        customers.c.email_opt_in.is_(True),
        customers.c.email_confirmed_at.is_(None),
        customers.c.unsubscribed_at.is_(None),
        customers.c.email.is_not(None),
        customers.c.email != "",
        ~asked,
        ~suppressed,
    ]


def anyone_waiting(conn: Connection) -> bool:
    return bool(conn.execute(sa.select(sa.exists().where(*_needing()))).scalar())


def plan(conn: Connection, occurrence: datetime, now: datetime) -> int:
    """Ledger rows for everyone who needs a confirmation, in one statement; returns how many."""
    columns = ["campaign", "customer_id", "occurrence", "status", "email", "actions", "counts_toward_cap"]
    columns += ["channel", "created_at", "updated_at"]
    chosen = sa.select(
        sa.literal(CONFIRM_CAMPAIGN),
        customers.c.id,
        sa.literal(occurrence, sa.DateTime),
        sa.literal(str(DeliveryStatus.PENDING)),
        customers.c.email,
        sa.literal(_ACTIONS),
        sa.false(),
        sa.literal(str(Channel.EMAIL)),
        sa.literal(now, sa.DateTime),
        sa.literal(now, sa.DateTime),
    ).where(*_needing())
    return conn.execute(sa.insert(deliveries).from_select(columns, chosen)).rowcount


def send_confirmations(runner: Runner, at: datetime) -> list[OccurrenceReport]:
    """Finish confirmation occurrences left open (a crash, an outage), then plan and send a new one
    if anyone is waiting. RuntimeFailure when sending stops (the rows stay pending for the next run)."""
    if not (runner.workspace.templates_dir / TEMPLATE).is_file():
        # Checked before planning: a row planned now would fail to render and never be retried.
        raise RuntimeFailure(
            f"consent.double_opt_in is on but templates/{TEMPLATE} is missing: "
            "no confirmation email is sent until it exists (nudge init writes one)"
        )
    with runner.store.engine.connect() as conn:
        left_open = [occurrence for _, occurrence in ledger.unfinished(conn, [CONFIRM_CAMPAIGN])]
        waiting = anyone_waiting(conn)
    reports = [_run(runner, occurrence, plans=False) for occurrence in left_open if not runner.should_stop()]
    if waiting and not runner.should_stop() and naive_utc(at) not in left_open:
        reports.append(_run(runner, naive_utc(at), plans=True))
    return [r for r in reports if r.ran]


def _run(runner: Runner, occurrence: datetime, plans: bool) -> OccurrenceReport:
    """One confirmation occurrence, claimed as a campaign's is (one worker at a time)."""
    engine = runner.store.engine
    report = OccurrenceReport(campaign=CONFIRM_CAMPAIGN, occurrence=occurrence)
    claim = ledger.claim_occurrence(engine, CONFIRM_CAMPAIGN, occurrence, runner.worker, runner.now(), runner.lease)
    if claim is None:
        return report
    report.ran = True
    if claim.taken_over:
        reconcile(runner, _system_campaign(), claim)
    if claim.status == OccurrencePhase.PLANNING:
        if plans:
            with exclusive(runner.store, _PLAN_LOCK), engine.begin() as conn:
                report.recorded = report.matched = plan(conn, occurrence, runner.now())
        if not ledger.heartbeat(engine, claim, runner.worker, runner.now(), status=OccurrencePhase.DISPATCHING):
            raise RuntimeFailure(f"{CONFIRM_CAMPAIGN}: another worker took over this occurrence")
    token = ledger.row_token()
    while not runner.should_stop():
        with engine.begin() as conn:
            if not ledger.renew(conn, claim, runner.worker, runner.now()):
                raise RuntimeFailure(f"{CONFIRM_CAMPAIGN}: another worker took over this occurrence")
            rows = ledger.claim_batch(conn, CONFIRM_CAMPAIGN, occurrence, token, runner.now(), runner.batch_size)
        if not rows:
            break
        report.add(_send_batch(runner, claim, token, rows))
    with engine.connect() as conn:
        report.waiting = ledger.pending_left(conn, CONFIRM_CAMPAIGN, occurrence)
    if report.waiting == 0:
        ledger.heartbeat(engine, claim, runner.worker, runner.now(), status=OccurrencePhase.DONE)
    else:
        report.note = f"{report.waiting} waiting (stopped early)"
        ledger.release(engine, claim, runner.worker)
    return report


def _unsendable(row: Any, person: Any, blocked: dict[str, str]) -> tuple[str, str] | None:
    """Why a planned confirmation is not sent after all, as (status, reason); None to send it."""
    if person is None:
        return DeliveryStatus.FAILED, "customer no longer in the store"
    if row.email.lower() in blocked:
        return DeliveryStatus.FAILED, f"address suppressed ({blocked[row.email.lower()]}) since planning"
    if (person.email or "").lower() != row.email.lower():
        return DeliveryStatus.SKIPPED, "the address changed since planning (the new one gets its own)"
    if person.email_confirmed_at is not None or person.unsubscribed_at is not None:
        return DeliveryStatus.SKIPPED, "confirmed or unsubscribed since planning"
    return None


def _email(runner: Runner, row: Any, person: Any) -> OutgoingEmail:
    config = runner.workspace.config
    token = sign(runner.outputs.secret, row.customer_id, row.email, CONFIRM_CAMPAIGN, runner.clock())
    urls = links(config.email.unsubscribe_base, token)
    customer = dict(person._mapping)
    env = runner.workspace.environment()
    locale = rendering_locale(customer.get("locale"), settings_of(env))
    context = {"customer": customer, "at": runner.clock(), "locale": locale, "preheader": "", **urls}
    context["confirm_url"] = page_link(config.email.unsubscribe_base, "confirm", token)
    tags = chain(customer.get("locale"))
    subject = next((SUBJECTS[t] for t in tags if t in SUBJECTS), SUBJECTS["en"])
    return build_email(
        delivery_id=row.id,
        sender=config.email.from_,
        to=row.email,
        subject=subject,
        # The same path as every campaign email: the locale's template, CSS inlined.
        body=render_email_body(env, TEMPLATE, context, customer.get("locale")).body,
        is_html=True,
        unsubscribe_url=urls["unsubscribe_url"],
        campaign=CONFIRM_CAMPAIGN,
    )


def _prepare(runner: Runner, rows: Sequence[Any]) -> tuple[list[OutgoingEmail], dict[int, tuple[str, str]]]:
    with runner.store.engine.connect() as conn:
        people = {
            p.id: p for p in conn.execute(sa.select(customers).where(customers.c.id.in_([r.customer_id for r in rows])))
        }
        blocked = suppressed_among(conn, [r.email for r in rows])
    emails, outcome = [], {}
    for row in rows:
        why = _unsendable(row, people.get(row.customer_id), blocked)
        try:
            if why is None:
                emails.append(_email(runner, row, people[row.customer_id]))
        except RenderError as exc:
            why = (DeliveryStatus.FAILED, f"template: {exc}")
        if why is not None:
            outcome[row.id] = why
    return emails, outcome


def _hand_over(gate: HandOffGate, emails: list[OutgoingEmail]) -> tuple[dict[int, SendResult], str | None]:
    """Through the email connector: results by delivery id, and why sending stopped (None if it did not)."""
    if not emails:
        return {}, None
    try:
        sent, stopped = gate.runner.outputs.email().send(emails, gate), None
    except (ConnectorFatal, RuntimeFailure) as exc:
        # Only what reached an outcome is recorded (as dispatch does); the rest did not leave.
        sent, stopped = getattr(exc, "partial", []), str(exc)
    return {r.delivery_id: r for r in sent if r.status != SendStatus.NOT_OURS}, stopped


def _send_batch(runner: Runner, claim: ledger.Claim, token: str, rows: Sequence[Any]) -> dict[str, int]:
    """Render, hand over and record one claimed batch; counts by final status."""
    emails, outcome = _prepare(runner, rows)
    gate = HandOffGate(runner, claim, token)
    results, stopped = _hand_over(gate, emails)
    final: list[tuple[int, str, str | None, str | None]] = []
    retry: list[int] = []
    for row in rows:
        result = results.get(row.id)
        if row.id in gate.refused:
            continue
        if row.id in outcome:
            final.append((row.id, outcome[row.id][0], outcome[row.id][1], None))
        elif result is None or result.status == SendStatus.RETRY:
            retry.append(row.id)  # never reached the connector, or refused for now: it did not leave
        else:
            final.append((row.id, str(result.status), result.reason, result.provider_id))
    bad = {e.to for e in emails if e.delivery_id in results and results[e.delivery_id].bad_address}
    with runner.store.engine.begin() as conn:
        ledger.record_results(conn, final, token, runner.now())
        ledger.release_rows(conn, retry, token, runner.now(), reason="not sent yet, retried on the next run")
        ledger.release_rows(conn, sorted(gate.refused), token, runner.now())
        if bad:
            suppress(conn, bad, "invalid address", "connector", runner.clock())
    if gate.refused:
        raise RuntimeFailure(f"{CONFIRM_CAMPAIGN}: another worker took over this occurrence")
    if retry:
        first = next((results[i].reason for i in retry if i in results), None)
        raise RuntimeFailure(f"{CONFIRM_CAMPAIGN}: sending stopped: {stopped or first or 'try later'}")
    counts: dict[str, int] = {}
    for _, status, _, _ in final:
        counts[status] = counts.get(status, 0) + 1
    return counts
