"""Phase 1 of an occurrence: the planner's targets (and holdout) written to the ledger with their
coupons, batch by batch, before anything leaves."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.audience.compiler import compile_condition
from engine.audience.planner import Planner
from engine.audience.trigger import fix_horizon
from engine.core.clock import naive_utc
from engine.core.errors import RuntimeFailure, Stopped
from engine.core.status import SKIPPING, DeliveryStatus, Outcome
from engine.delivery import ledger
from engine.delivery.history import record_tally, start_tally
from engine.delivery.planned_rows import RowShaper
from engine.delivery.runner import OccurrenceReport, Runner
from engine.rules.actions import CouponAction, action_when
from engine.rules.campaign import Campaign
from engine.store.locks import exclusive
from engine.store.tables import customers

PLAN_BATCH = 2_000


def _when_sets(conn: sa.Connection, campaign: Campaign, ids: list[str], planner: Planner) -> dict[int, set[str]]:
    """For each action with `when`, the customers of this batch for whom it holds (one query each)."""
    found: dict[int, set[str]] = {}
    for index, action in enumerate(campaign.actions):
        when = action_when(action)
        if when is not None:
            query = sa.select(customers.c.id).where(customers.c.id.in_(ids), compile_condition(when, planner.context()))
            found[index] = set(conn.execute(query).scalars())
    return found


def planning_keys(campaign: Campaign, runner: Runner) -> list[str]:
    """What planning must be serialised on: the campaign (its cooldown); or every emailing campaign
    at once when a frequency cap spans them, and every campaign of its exclusive group — both when
    both apply."""
    keys = []
    caps = runner.workspace.config.limits.frequency_cap
    if caps is not None and caps.applies_to(campaign.channels):
        keys.append("plan:frequency-cap")
    if campaign.exclusive is not None:
        keys.append(f"plan:exclusive:{campaign.exclusive}")
    return keys or [f"plan:{campaign.campaign}"]


def materialize(
    runner: Runner, campaign: Campaign, at: datetime, claim: ledger.Claim, report: OccurrenceReport
) -> None:
    """The whole audience through the planner into the ledger, batch by batch.

    Held under the planning lock, so an occurrence planned at the same moment by another process
    (a neighbouring `--at`, another daemon) sees these rows in its cooldown and cap, as if the two
    had run one after the other."""
    with exclusive(runner.store, *planning_keys(campaign, runner)):
        if campaign.trigger is not None:
            with runner.store.engine.begin() as conn:
                fix_horizon(conn, campaign.campaign, naive_utc(at))
        _materialize(runner, campaign, at, claim, report)


def _materialize(
    runner: Runner, campaign: Campaign, at: datetime, claim: ledger.Claim, report: OccurrenceReport
) -> None:
    coupon_specs = {i: a.coupon for i, a in enumerate(campaign.actions) if isinstance(a, CouponAction)}
    occurrence = naive_utc(at)
    started = time.perf_counter()  # a duration for the audience history, not an instant: no clock
    with runner.store.engine.connect() as reader:
        config, segments = runner.workspace.config, runner.workspace.segments
        planner = Planner(conn=reader, config=config, segments=segments, at=at, lookahead=True, count_locales=True)
        tally = start_tally(reader, planner, campaign, occurrence)
        batch: list[Any] = []
        shaper = RowShaper(runner.workspace.config, campaign, at, marketing=planner.topic(campaign) is not None)

        def flush() -> None:
            chosen = [
                b
                for b in batch
                if b.outcome in (Outcome.TARGETED, Outcome.HELD_OUT) or planner.skips(campaign, b.outcome)
            ]
            reached = [b.customer_id for b in chosen if b.outcome not in SKIPPING]  # skipped rows run no action
            when = _when_sets(reader, campaign, reached, planner) if reached else {}
            rows = [
                row
                for item in chosen
                for row in shaper.rows(
                    item, [i for i in range(len(campaign.actions)) if i not in when or item.customer_id in when[i]]
                )
            ]
            with runner.store.engine.begin() as writer:
                report.recorded += ledger.record_plan(
                    writer, campaign.campaign, occurrence, rows, coupon_specs, runner.now()
                )
                # With the batch: a re-plan resumes from exactly what the committed batches counted.
                record_tally(writer, campaign.campaign, occurrence, tally, time.perf_counter() - started, runner.now())
            report.held_out += sum(1 for r in rows if r.status == DeliveryStatus.HELD_OUT)
            report.skipped += sum(1 for b in chosen if b.outcome in SKIPPING)
            report.deferred += sum(1 for r in rows if r.not_before is not None and r.not_before > runner.now())
            if not ledger.heartbeat(runner.store.engine, claim, runner.worker, runner.now()):
                raise RuntimeFailure(f"{campaign.campaign}: another worker took over this occurrence")
            batch.clear()

        for item in planner.classify(campaign):
            report.matched += 1
            tally.add(item)
            batch.append(item)
            if len(batch) >= PLAN_BATCH:
                flush()
                runner.progress(campaign.campaign, "planned", report.matched)
                if runner.should_stop():
                    reader.rollback()
                    raise Stopped()
        flush()
        reader.rollback()
