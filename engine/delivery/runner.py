"""What a delivery run needs, passed in — the clock and the stop signal too, so tests and the
daemon drive it without patching anything."""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.core.clock import iso_utc, naive_utc
from engine.core.status import DeliveryStatus
from engine.delivery import ledger
from engine.delivery.outlets import Outputs
from engine.store import Store
from engine.workspace.loader import Workspace


@dataclass
class Runner:
    workspace: Workspace
    store: Store
    outputs: Outputs
    clock: Callable[[], datetime]
    worker: str = field(default_factory=ledger.worker_id)
    stop: threading.Event = field(default_factory=threading.Event)
    batch_size: int = 200
    workers: int = 1  # dispatch processes per occurrence (engine/delivery/workers.py)
    lease: timedelta = ledger.LEASE
    # Called with (campaign, phase, count so far) as planning and sending go on; the CLI draws it.
    on_progress: Callable[[str, str, int], None] | None = None

    def progress(self, campaign: str, phase: str, done: int) -> None:
        if self.on_progress is not None:
            self.on_progress(campaign, phase, done)

    def now(self) -> datetime:
        """The wall clock as the store keeps instants (naive UTC)."""
        return naive_utc(self.clock())

    def should_stop(self) -> bool:
        return self.stop.is_set()


@dataclass
class OccurrenceReport:
    """What one occurrence did: counts a person (or a script) reads after a run."""

    campaign: str
    occurrence: datetime
    ran: bool = False
    note: str = ""
    matched: int = 0
    recorded: int = 0
    held_out: int = 0
    skipped: int = 0
    deferred: int = 0
    waiting: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    # Per phase (planning, dispatch): wall seconds, and CPU seconds of this process and the
    # dispatch workers it waited for — what a benchmark compares with a bare loop on a shared machine.
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), _cpu()
        try:
            yield
        finally:
            self.seconds[phase] = round(time.perf_counter() - wall, 4)
            self.cpu_seconds[phase] = round(_cpu() - cpu, 4)

    def add(self, counts: dict[str, int]) -> None:
        for status, number in counts.items():
            self.counts[status] = self.counts.get(status, 0) + number

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "occurrence": iso_utc(self.occurrence),
            "ran": self.ran,
            "note": self.note,
            "matched": self.matched,
            "recorded": self.recorded,
            "held_out": self.held_out,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "waiting": self.waiting,
            "sent": self.counts.get(DeliveryStatus.SENT, 0),
            "failed": self.counts.get(DeliveryStatus.FAILED, 0),
            "unknown": self.counts.get(DeliveryStatus.UNKNOWN, 0),
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }


def _cpu() -> float:
    """User + system CPU of this process and its waited-for children (dispatch workers) so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
