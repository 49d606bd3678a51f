"""An occurrence says how long its planning and its dispatch took, wall and CPU (`nudge run
--format json`); the dispatch phase's CPU counts its dispatch workers' too. A benchmark on a shared,
loaded machine compares that CPU with a bare loop's (bench/delivery_floor.py)."""

from __future__ import annotations

import resource
from datetime import datetime, timezone

from engine.delivery.occurrence import run_occurrence
from tests.support.helpers import Clock, email_campaign, make_runner, write_workspace
from tests.support.store import seed

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CUSTOMERS = 300


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def test_planning_and_dispatch_times_count_the_dispatch_workers_cpu(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": f"c{i:03d}", "email": f"c{i}@example.com", "email_opt_in": True, "country": "US"}
            for i in range(CUSTOMERS)
        ],
    )
    ws = write_workspace(tmp_path, [email_campaign()])
    campaign = ws.campaigns["promo"].campaign
    before = _children_cpu()
    report = run_occurrence(make_runner(ws, store, Clock(AT), workers=2, batch_size=50), campaign, AT)
    workers_cpu = _children_cpu() - before
    assert report.counts == {"sent": CUSTOMERS}
    assert set(report.seconds) == set(report.cpu_seconds) == {"planning", "dispatch"}
    assert min(report.seconds.values()) >= 0 and min(report.cpu_seconds.values()) >= 0
    assert workers_cpu > 0  # the two forked workers rendered and wrote every message
    # The parent only waits while its workers send: without theirs, the dispatch CPU would be ~0.
    assert report.cpu_seconds["dispatch"] >= workers_cpu - 0.001
    assert {k: report.as_json()[k] for k in ("seconds", "cpu_seconds")} == {
        "seconds": report.seconds,
        "cpu_seconds": report.cpu_seconds,
    }
    again = run_occurrence(make_runner(ws, store, Clock(AT), workers=2), campaign, AT)
    assert not again.ran and again.seconds == again.cpu_seconds == {}  # nothing planned or sent
