"""`python -m bench.dashboard --scale 1m` — the dashboard's campaign page with two years of history.

The bench's shop (bench.generate: N customers, about 10·N events over two years) is imported, then
the birthday campaign is planned by the engine at each of 730 daily occurrences before the bench's
instant (each writes its ledger rows and its audience_history row, as `nudge run` does); the
sending is simulated by settling the planned rows (1 in 50 failed) so that no email is rendered.
Then the campaign page over the whole two years (`?range=2y`) and the campaigns list are rendered
server-side through the dashboard's WSGI app, best of three after a first (cold) request.

Prints one line per page and writes bench/results/<time>-<scale>-dashboard.json. A measurement,
not a test: nothing fails on time."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
import yaml

from .generate import AT, generate, scale_to_int

ROOT = Path(__file__).resolve().parent.parent
DAYS = 730
CAMPAIGN = "birthday"


def workspace(folder: Path, store_url: str) -> Path:
    for name in ("rules", "templates"):
        shutil.copytree(ROOT / name, folder / name)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["store"] = store_url
    config["limits"].pop("quiet_hours", None)  # every occurrence settles the day it runs
    config["email"]["outbox"] = {"dir": str(folder / "outbox")}
    config["ui"] = {"password_env": "BENCH_UI_PASSWORD"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return folder


def simulate(root: Path) -> dict:
    """Two years of daily occurrences of the campaign: planned by the engine, sending simulated."""
    from engine.core.status import DeliveryStatus, OccurrencePhase
    from engine.delivery import ledger
    from engine.delivery.materialize import materialize
    from engine.delivery.runner import OccurrenceReport
    from engine.rules.config import resolve_store_url
    from engine.rules.schedule import next_fire, trigger_for
    from engine.store import open_store
    from engine.store.tables import deliveries
    from engine.workspace.loader import load_workspace
    from tests.support.helpers import Clock, make_runner

    ws = load_workspace(root)
    store = open_store(resolve_store_url(ws.config, root), create=False)
    [campaign] = ws.select([CAMPAIGN])
    trigger = trigger_for(campaign, ws.config.timezone)
    at, planned, start = next_fire(trigger, AT - timedelta(days=DAYS)), 0, time.perf_counter()
    while at is not None and at <= AT:
        clock = Clock(at + timedelta(minutes=1))
        runner = make_runner(ws, store, clock)
        occurrence = at.replace(tzinfo=None)
        claim = ledger.claim_occurrence(store.engine, CAMPAIGN, occurrence, runner.worker, clock(), runner.lease)
        assert claim is not None
        report = OccurrenceReport(campaign=CAMPAIGN, occurrence=occurrence)
        materialize(runner, campaign, at, claim, report)
        mine = (deliveries.c.campaign == CAMPAIGN, deliveries.c.occurrence == occurrence)
        with store.engine.begin() as conn:
            pending = (*mine, deliveries.c.status == DeliveryStatus.PENDING)
            failing = deliveries.c.id % 50 == 0
            conn.execute(
                sa.update(deliveries)
                .where(*pending, failing)
                .values(status=DeliveryStatus.FAILED, reason="simulated: mailbox unavailable")
            )
            sent_at = occurrence + timedelta(minutes=1)
            conn.execute(sa.update(deliveries).where(*pending).values(status=DeliveryStatus.SENT, sent_at=sent_at))
        ledger.heartbeat(store.engine, claim, runner.worker, clock(), status=OccurrencePhase.DONE)
        planned += report.recorded
        at = next_fire(trigger, at)
    store.dispose()
    return {"occurrences_seconds": time.perf_counter() - start, "ledger_rows": planned}


def render(root: Path, password: str = "bench") -> dict:
    """The pages as the dashboard serves them (WSGI, no network): before anything is kept, the
    warm-up `nudge serve` runs at start, then each page best of three after a first request."""
    import base64

    from werkzeug.test import Client

    from engine.rules.config import resolve_store_url
    from engine.store import open_store
    from engine.web.dashboard import Dashboard
    from engine.web.serve import App
    from engine.workspace.loader import load_workspace

    ws = load_workspace(root, need_rules=False)
    store = open_store(resolve_store_url(ws.config, root), create=False)
    now = AT + timedelta(hours=1)
    dashboard = Dashboard(store, root, password, lambda: now)
    client = Client(App(store, b"bench", None, lambda: now, dashboard=dashboard))
    auth = {"Authorization": "Basic " + base64.b64encode(f"bench:{password}".encode()).decode()}
    found = {}
    # Before any count is kept (a page opened before `nudge serve`'s warm-up ends)…
    start = time.perf_counter()
    assert client.get(f"/ui/campaigns/{CAMPAIGN}?range=2y", headers=auth).status_code == 200
    found["unwarmed_seconds"] = time.perf_counter() - start
    # …and what `nudge serve` does at start, from nothing kept.
    dashboard.kept = type(dashboard.kept)()
    start = time.perf_counter()
    dashboard.warm()
    found["warm_up_seconds"] = time.perf_counter() - start
    for label, path in (("campaign", f"/ui/campaigns/{CAMPAIGN}?range=2y"), ("campaigns", "/ui/")):
        times = []
        for _ in range(4):
            start = time.perf_counter()
            answer = client.get(path, headers=auth)
            times.append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.text[:500]
        found[label] = {"cold_seconds": times[0], "seconds": min(times[1:]), "bytes": len(answer.data)}
    html = client.get(f"/ui/campaigns/{CAMPAIGN}?range=2y", headers=auth).text
    found["campaign"]["occurrences_drawn"] = int(html.split('data-occurrences="')[1].split('"')[0])
    store.dispose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="10k", help="customers: 1k, 10k, 100k, 1m (events ≈ 10×)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the store and workspace (their folder is printed)")
    args = parser.parse_args()
    from engine.ingest.importer import import_file
    from engine.store import open_store

    customers = scale_to_int(args.scale)
    work = Path(tempfile.mkdtemp(prefix="nudge-bench-dashboard-"))
    try:
        print(f"generating {customers:,} customers", file=sys.stderr)
        people, events, count = generate(customers, work / "data")
        url = f"sqlite:///{work / 'bench.db'}"
        root = workspace(work / "ws", url)
        store = open_store(url, create=True)
        now = datetime.now(timezone.utc)
        print(f"importing {count:,} events", file=sys.stderr)
        import_file(store, "customers", people, now=now)
        import_file(store, "events", events, now=now)
        store.dispose()
        print(f"planning {DAYS} daily occurrences of {CAMPAIGN}", file=sys.stderr)
        from .__main__ import versions

        result = {"scale": args.scale, "customers": customers, "events": count, "database": "sqlite"}
        result["versions"] = versions()
        result["history"] = simulate(root)
        result["pages"] = render(root)
    finally:
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    page, rows = result["pages"]["campaign"], result["history"]["ledger_rows"]
    print(
        f"dashboard, {customers:,} customers, {CAMPAIGN} over {page['occurrences_drawn']} daily occurrences "
        f"({rows:,} ledger rows): campaign page {page['seconds']:.3f} s server-side "
        f"({page['bytes'] / 1024:.0f} KB), campaigns list {result['pages']['campaigns']['seconds']:.3f} s; "
        f"before the warm-up the campaign page takes {result['pages']['unwarmed_seconds']:.2f} s, the warm-up "
        f"{result['pages']['warm_up_seconds']:.2f} s"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{time.strftime('%Y%m%dT%H%M%S')}-{args.scale}-dashboard.json"
    target.write_text(json.dumps(result, indent=2))
    print(f"results: {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
