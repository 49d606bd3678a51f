"""`nudge daemon`: every enabled campaign on its schedule, until asked to stop.

Each step: reload changed rule files (a bad edit is reported and the last good version keeps
running), catch up each campaign at most once, run what is due, finish open occurrences whose
deferred messages are now due. Occurrences are claimed in the database, so several daemons can
share one PostgreSQL store; APScheduler only computes the ticks.
"""

from __future__ import annotations

import fcntl
import logging
import re
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import IO, TypeVar

from sqlalchemy.engine import make_url

from engine.audience.trigger import has_due
from engine.core.clock import aware_utc, naive_utc
from engine.core.durations import format_duration
from engine.core.errors import AlreadyRunning, RuntimeFailure, StoreUnavailable, UserInputError
from engine.core.status import DeliveryStatus
from engine.delivery import ledger
from engine.delivery.confirmations import send_confirmations
from engine.delivery.failures import Pause, record_failure
from engine.delivery.occurrence import OccurrenceReport, Runner, run_occurrence
from engine.delivery.reloading import Reloader
from engine.rules.campaign import Campaign
from engine.rules.schedule import latest_fire, next_fire, trigger_for
from engine.store.db import Store, is_outage
from engine.store.locks import exclusive
from engine.store.privacy import apply_retention
from engine.workspace.loader import SEGMENTS_FILE, LoadedCampaign, Rules, Workspace, config_topics, load_rules, runnable

log = logging.getLogger("nudge.daemon")
T = TypeVar("T")
# A campaign that never ran catches the tick just before the daemon started, if this recent.
FIRST_RUN_GRACE = timedelta(minutes=5)
MAX_SLEEP = timedelta(seconds=30)
METRICS_EVERY = timedelta(hours=24)
RETENTION_EVERY = timedelta(hours=24)
# The counts a run line carries in --log-format json.
COUNTED = ("matched", "recorded", "held_out", "skipped", "sent", "failed", "unknown", "waiting")


def lock_sqlite(store_url: str) -> IO | None:
    """SQLite serves one daemon: hold an exclusive lock beside the database file."""
    url = make_url(store_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    handle = open(url.database + ".daemon.lock", "w")  # noqa: SIM115 (held open for the daemon's life: it is the lock)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunning(
            f"another nudge daemon is already running on {url.database}: SQLite supports "
            "one daemon at a time (use PostgreSQL to run several)"
        ) from None
    return handle


@dataclass
class Daemon:
    runner: Runner
    started_at: datetime
    campaigns: dict[str, LoadedCampaign] = field(default_factory=dict)
    reloader: Reloader | None = None
    pause: Pause = field(default_factory=Pause)  # campaigns whose last occurrence failed
    _metrics_tried: datetime | None = None  # a failed refit is not retried before the next day
    _retention_at: datetime | None = None

    def __post_init__(self) -> None:
        self.campaigns = self.campaigns or dict(self.workspace.campaigns)
        if self.reloader is None:
            self.reloader = Reloader(self.workspace.root, self.load_rules)
        self.reload()

    @property
    def stop(self) -> threading.Event:
        """Set it (a signal handler does) to finish the batch in hand and return."""
        return self.runner.stop

    @property
    def workspace(self) -> Workspace:
        return self.runner.workspace

    def load_rules(self) -> Rules:
        """What a reload reads (in the reloader's thread: nothing here may touch the store)."""
        config = self.workspace.config
        return load_rules(self.workspace.root, config.limits.exclusive, config_topics(config))

    def reload(self) -> None:
        """Pick up edited rule files (loaded off this thread, see Reloader); keep the last good
        version of any file that is now invalid."""
        assert self.reloader is not None
        rules = self.reloader.poll()
        if rules is None:
            return
        for problem in rules.problems:
            log.error("%s (keeping the last good version)", problem)
        segments = self.workspace.segments
        if str(self.workspace.rules_dir / SEGMENTS_FILE) not in rules.failed:
            segments = rules.segments
        # A file that fails now (its YAML, a segment it uses, or its template) keeps its last good version.
        kept = {name: loaded for name, loaded in self.campaigns.items() if loaded.path in rules.failed}
        fresh = dict(rules.campaigns)
        for name, loaded in kept.items():
            fresh.setdefault(name, loaded)
        log.info("rules loaded: %s", ", ".join(sorted(fresh)) or "none")
        self.campaigns = fresh
        # A new Workspace (and with it a fresh template environment), never an edit of the old one.
        self.runner = replace(
            self.runner, workspace=replace(self.workspace, campaigns=fresh, segments=segments, _environment=None)
        )

    def enabled(self) -> list[Campaign]:
        return runnable(c.campaign for c in self.campaigns.values() if c.campaign.enabled)

    def triggers_due(self, campaign: Campaign, tick: datetime) -> bool:
        """A triggered campaign runs an occurrence only when a trigger's delay ended since its last."""
        with self.runner.store.engine.connect() as conn:
            return has_due(conn, campaign, tick)

    def due(self, campaign: Campaign, now: datetime) -> datetime | None:
        """The one tick to run now, if any: the latest since the campaign last ran."""
        with self.runner.store.engine.connect() as conn:
            last = ledger.last_occurrence(conn, campaign.campaign)
        since = aware_utc(last) if last else self.started_at - FIRST_RUN_GRACE
        return latest_fire(trigger_for(campaign, self.workspace.config.timezone), since, now)

    def refresh_metrics(self, now: datetime) -> None:
        """Refit the lifetime-value models once a day (before the campaigns that may use them)."""
        import sqlalchemy as sa

        from engine.audience.clv import refresh
        from engine.store.tables import customer_metrics

        def fresh() -> bool:
            with self.runner.store.engine.connect() as conn:
                last = conn.execute(sa.select(sa.func.max(customer_metrics.c.computed_at))).scalar()
            return last is not None and now - aware_utc(last) < METRICS_EVERY

        if fresh() or (self._metrics_tried is not None and now - self._metrics_tried < METRICS_EVERY):
            return
        self._metrics_tried = now
        # Several daemons may share the store: one refits, the others find the result fresh.
        with exclusive(self.runner.store, "metrics-refresh"):
            if fresh():
                return
            try:
                fitted = refresh(self.runner.store, now, self.workspace.config.metrics.revenue_property)
                log.info("customer metrics refreshed for %d customers", fitted["customers"])
            except (ValueError, ArithmeticError) as exc:
                log.warning("customer metrics not refreshed: %s", exc)

    def apply_retention(self, now: datetime) -> None:
        """Delete events older than config.yaml `retention.events`, once a day."""
        keep = self.workspace.config.retention.events
        if keep is None or (self._retention_at is not None and now - self._retention_at < RETENTION_EVERY):
            return
        with self.runner.store.engine.begin() as conn:
            deleted = apply_retention(conn, keep, now)
        self._retention_at = now
        log.info("retention: deleted %d events older than %s", deleted, format_duration(keep))

    def step(self, now: datetime) -> list[OccurrenceReport]:
        """One pass: reload, refresh metrics and apply retention daily, run due ticks (highest
        priority first), finish open occurrences. A campaign that fails is logged, recorded for
        /metrics and paused; the others go on. Only an outage of the store leaves this method."""
        self.reload()
        self._chore("metrics refresh", lambda: self.refresh_metrics(now))
        self._chore("retention", lambda: self.apply_retention(now))
        reports: list[OccurrenceReport] = []
        if self.workspace.config.consent.double_opt_in:
            self._chore("confirmation emails", lambda: reports.extend(send_confirmations(self.runner, now)))
        campaigns = self.enabled()
        ran: set[tuple[str, datetime]] = set()
        for campaign in campaigns:
            if self.stop.is_set():
                break
            if self.pause.paused(campaign.campaign, now):
                continue
            tick = self._attempt(campaign, None, now, partial(self._due_tick, campaign, now))
            if tick is None:
                continue
            report = self._attempt(campaign, tick, now, partial(run_occurrence, self.runner, campaign, tick))
            if report is not None and report.ran:
                _log_run(report, tick)
                reports.append(report)
                ran.add((campaign.campaign, naive_utc(tick)))
        # A tick just run and left open (rows waiting for quiet hours) is not claimed again here:
        # that claim would count as a takeover and settle its rows a second time.
        return reports + [r for r in self.resume(campaigns, now, skip=ran) if r.counts]

    def _due_tick(self, campaign: Campaign, now: datetime) -> datetime | None:
        tick = self.due(campaign, now)
        if tick is None or (campaign.trigger is not None and not self.triggers_due(campaign, tick)):
            return None
        return tick

    def resume(
        self, campaigns: list[Campaign], now: datetime, skip: Collection[tuple[str, datetime]] = ()
    ) -> list[OccurrenceReport]:
        """Occurrences a crash, a stop, quiet hours or a failure left open: due rows only; not
        those in `skip` (campaign, naive UTC occurrence)."""
        by_name = {c.campaign: c for c in campaigns}
        with self.runner.store.engine.connect() as conn:
            open_ones = ledger.unfinished(conn, by_name)
        reports = []
        for name, occurrence in open_ones:
            if self.stop.is_set():
                break
            if self.pause.paused(name, now) or (name, occurrence) in skip:
                continue
            campaign, at = by_name[name], aware_utc(occurrence)
            report = self._attempt(campaign, at, now, partial(run_occurrence, self.runner, campaign, at))
            if report is not None and report.ran:
                report.note = ("resumed; " + report.note).rstrip("; ")
                reports.append(report)
        return reports

    def _attempt(self, campaign: Campaign, tick: datetime | None, now: datetime, work: Callable[[], T]) -> T | None:
        """`work` for this campaign; whatever it raises but an outage stays with the campaign
        (None is returned). The occurrence at `tick`, if any, is recorded as failed."""
        try:
            result = work()
        except (RuntimeFailure, UserInputError) as exc:
            where = {"campaign": campaign.campaign, "occurrence": tick.isoformat() if tick else None}
            log.error("%s at %s: %s", campaign.campaign, where["occurrence"], exc, extra=where)
            return None
        except Exception as exc:
            if is_outage(exc):
                raise
            self._failed(campaign, tick, now, exc)
            return None
        if tick is not None:
            self.pause.succeeded(campaign.campaign)
        return result

    def _failed(self, campaign: Campaign, tick: datetime | None, now: datetime, exc: Exception) -> None:
        """Log it (one line, no traceback), record it on the occurrence for /metrics, pause the campaign."""
        delay = self.pause.failed(campaign.campaign, now)
        at = tick.isoformat() if tick else None
        log.error(
            "%s at %s failed (%s: %s): the other campaigns go on; retried in %s",
            campaign.campaign,
            at,
            type(exc).__name__,
            _without_values(first_line(exc)),
            format_duration(delay),
            extra={"campaign": campaign.campaign, "occurrence": at},
        )
        if tick is not None:
            record_failure(self.runner.store.engine, campaign.campaign, naive_utc(tick), self.runner.now())

    def _chore(self, what: str, chore: Callable[[], None]) -> None:
        """A daily chore (metrics refit, retention) that fails on the data is logged and skipped."""
        try:
            chore()
        except Exception as exc:
            if is_outage(exc):
                raise
            log.error("%s failed (%s: %s): campaigns go on", what, type(exc).__name__, _without_values(first_line(exc)))

    def next_wakeup(self, now: datetime) -> datetime:
        ticks = [next_fire(trigger_for(c, self.workspace.config.timezone), now) for c in self.enabled()]
        soonest = min((t for t in ticks if t is not None), default=now + MAX_SLEEP)
        return min(soonest, now + MAX_SLEEP)

    def run_forever(self) -> None:
        """Step until stopped. The store going away is a wait: back off, retry, resume."""
        log.info("daemon started as %s with %d campaigns", self.runner.worker, len(self.enabled()))
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                self.step(self.runner.clock())
            except Exception as exc:
                if not is_outage(exc):
                    raise
                delay = backoff.failed()
                log.warning("store unreachable (%s): retrying in %.0fs", first_line(exc), delay)
                self.stop.wait(delay)
                continue
            if backoff.failures:
                log.info("store reachable again after %d failed attempts: resuming", backoff.failures)
                backoff.reset()
            wait = (self.next_wakeup(self.runner.clock()) - self.runner.clock()).total_seconds()
            self.stop.wait(max(0.05, wait))
        log.info("daemon stopped")


def _log_run(report: OccurrenceReport, tick: datetime) -> None:
    counts = report.as_json()
    at = tick.isoformat()
    log.info(
        "%s at %s: matched %d, sent %d, failed %d, unknown %d, waiting %d",
        report.campaign,
        at,
        report.matched,
        report.counts.get(DeliveryStatus.SENT, 0),
        report.counts.get(DeliveryStatus.FAILED, 0),
        report.counts.get(DeliveryStatus.UNKNOWN, 0),
        report.waiting,
        extra={"campaign": report.campaign, "occurrence": at, "counts": {k: counts[k] for k in COUNTED}},
    )


def wait_for_store(opener: Callable[[], Store], stop: threading.Event) -> Store | None:
    """Open the store, waiting out an outage with backoff; None if asked to stop meanwhile."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            store = opener()
        except StoreUnavailable as exc:
            delay = backoff.failed()
            log.warning("%s: retrying in %.0fs", exc, delay)
            stop.wait(delay)
            continue
        if backoff.failures:
            log.info("store reachable: starting")
        return store
    return None


@dataclass
class Backoff:
    """Exponential, bounded: 1 s, 2 s, 4 s … at most `maximum`."""

    initial: float = 1.0
    maximum: float = 60.0
    failures: int = 0

    def failed(self) -> float:
        self.failures += 1
        return min(self.initial * 2 ** (self.failures - 1), self.maximum)

    def reset(self) -> None:
        self.failures = 0


def _without_values(text: str) -> str:
    """A database's message without the values it quotes (a customer's data stays out of the log)."""
    return _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], text)[:300]


_QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'')


def first_line(exc: BaseException) -> str:
    """One line of an error, without the driver's multi-line detail (and no connection string)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
