"""`nudge run`: resume what is unfinished, then deliver one occurrence of each chosen campaign."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.core.clock import aware_utc, naive_utc
from engine.core.errors import RuntimeFailure
from engine.delivery.confirmations import send_confirmations
from engine.delivery.ledger import unfinished
from engine.delivery.occurrence import OccurrenceReport, Runner, run_occurrence
from engine.rules.campaign import Campaign


@dataclass
class RunSummary:
    reports: list[OccurrenceReport] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def resume_unfinished(runner: Runner, campaigns: list[Campaign], summary: RunSummary) -> None:
    """Occurrences a crash or quiet hours left open: finish them first (due rows only)."""
    by_name = {c.campaign: c for c in campaigns}
    with runner.store.engine.connect() as conn:
        open_ones = unfinished(conn, by_name)
    for name, occurrence in open_ones:
        if runner.should_stop():
            return
        try:
            report = run_occurrence(runner, by_name[name], aware_utc(occurrence))
        except RuntimeFailure as exc:
            summary.failures.append(str(exc))
            continue
        if report.ran:
            report.note = ("resumed; " + report.note).rstrip("; ")
            summary.reports.append(report)


def run_campaigns(runner: Runner, campaigns: list[Campaign], at: datetime) -> RunSummary:
    """Highest priority first, so the frequency cap favours it. One failing campaign does not stop the rest."""
    summary = RunSummary()
    if runner.workspace.config.consent.double_opt_in:
        try:
            summary.reports += send_confirmations(runner, at)
        except RuntimeFailure as exc:
            summary.failures.append(str(exc))
    resume_unfinished(runner, campaigns, summary)
    # An occurrence just resumed is not run a second time: its report is the resumed one, and a
    # second claim would count as a takeover and settle its rows again, hiding a settling bug.
    resumed = {(r.campaign, r.occurrence) for r in summary.reports if r.ran}
    for campaign in campaigns:
        if runner.should_stop():
            break
        if (campaign.campaign, naive_utc(at)) in resumed:
            continue
        try:
            summary.reports.append(run_occurrence(runner, campaign, at))
        except RuntimeFailure as exc:
            summary.failures.append(str(exc))
    return summary
