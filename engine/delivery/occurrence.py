"""One campaign occurrence end to end: claim it, reconcile a dead worker's rows, materialize the
plan into the ledger, dispatch it — exactly once whatever else is running or has crashed."""

from __future__ import annotations

from datetime import datetime

from engine.core.clock import naive_utc
from engine.core.errors import RuntimeFailure, Stopped
from engine.core.status import OccurrencePhase
from engine.delivery import ledger
from engine.delivery.materialize import materialize
from engine.delivery.reconcile import reconcile
from engine.delivery.runner import OccurrenceReport, Runner
from engine.delivery.workers import dispatch_all
from engine.rules.campaign import Campaign

__all__ = ["OccurrenceReport", "Runner", "run_occurrence"]


def run_occurrence(runner: Runner, campaign: Campaign, at: datetime) -> OccurrenceReport:
    """Deliver one occurrence of a campaign; a second call for the same one sends nothing new."""
    occurrence = naive_utc(at)
    report = OccurrenceReport(campaign=campaign.campaign, occurrence=occurrence)
    engine = runner.store.engine
    claim = ledger.claim_occurrence(engine, campaign.campaign, occurrence, runner.worker, runner.now(), runner.lease)
    if claim is None:
        report.note = "already done, or being run by another worker"
        return report
    report.ran = True
    if claim.taken_over:
        reconcile(runner, campaign, claim)
    if claim.status == OccurrencePhase.PLANNING:
        try:
            with report.timed("planning"):
                materialize(runner, campaign, at, claim, report)
        except Stopped:
            report.note = "stopped while planning; resumes on the next run"
            ledger.release(engine, claim, runner.worker)
            return report
        if not ledger.heartbeat(engine, claim, runner.worker, runner.now(), status=OccurrencePhase.DISPATCHING):
            raise RuntimeFailure(f"{campaign.campaign}: another worker took over this occurrence")
    with report.timed("dispatch"):
        dispatch_all(runner, campaign, at, claim, report)
    with engine.connect() as conn:
        left = ledger.pending_left(conn, claim.campaign, claim.occurrence)
    report.waiting = left
    if left == 0:
        ledger.heartbeat(engine, claim, runner.worker, runner.now(), status=OccurrencePhase.DONE)
    else:
        report.note = f"{left} waiting (quiet hours in the customer's time zone, or stopped early)"
        ledger.release(engine, claim, runner.worker)
    return report
