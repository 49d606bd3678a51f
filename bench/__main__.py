"""`python -m bench --scale 10k` — nudge against the database's own speed, in one run.

Phases, per database: import (events/s, peak memory) → events posted to `nudge serve` (gunicorn,
two workers) against the same events from a file → the four standard campaigns three ways (nudge
in process, `nudge dry-run` as a user runs it, hand-written SQL) plus two peers (a pandas script
as an analyst would write it, and a per-customer Python rule engine), ids cross-checked → start-up
(`nudge dry-run`'s imports against its third-party packages imported alone) → delivery of a
≥100k-message campaign at scale 1m into the outbox and into a local SendGrid-compatible sink.
Prints a table, writes bench/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from . import channels, delivery_floor, import_floor, ingest_http, recommend, startup
from . import sendgrid as sendgrid_bench
from .generate import AT, delivery_campaign, generate, scale_to_int

ROOT = Path(__file__).resolve().parent.parent
BLAST = delivery_campaign(
    "bench-blast",
    "Delivery benchmark: the delivery buckets (13% up to 400k customers), personal content.",
    [
        {"coupon": {"name": "promo", "percent_off": 10, "valid_for": "7d", "prefix": "BENCH"}},
        {"email": {"template": "bench.html.j2", "subject": "{{ customer.first_name }}, 10% off"}},
    ],
)
# The standard layout (its <style> rules are inlined into every message) and a marketer's own rule.
BLAST_TEMPLATE = (
    '{% extends "_layout.html.j2" %}{% block content %}<style>.offer { font-size: 18px; color: #b91c1c }</style>'
    '<h1>Hi {{ customer.first_name }}</h1><p class="offer">Your code: <strong>{{ coupons.promo.code }}</strong></p>'
    "{% endblock %}\n"
)


def phase(*args: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.phase", *args], cwd=ROOT, capture_output=True, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise SystemExit(f"bench phase {args[0]} failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout)


def workspace(folder: Path, store_url: str, email: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("rules", "templates"):
        if not (folder / name).exists():
            shutil.copytree(ROOT / name, folder / name)
    # The hand SQL reproduces the four standard email campaigns. The journey reads the ledger,
    # which is empty here (it stays, disabled, because lapsed-buyers names its offer step); the
    # birthday text shares the birthday's customers: planning it too would time five against four.
    for name in ("churn-winback", "birthday-text"):
        rule = folder / "rules" / f"{name}.yaml"
        rule.write_text(yaml.safe_dump({**yaml.safe_load(rule.read_text()), "enabled": False}, sort_keys=False))
    (folder / "rules" / "bench-blast.yaml").write_text(yaml.safe_dump(BLAST, sort_keys=False))
    (folder / "templates" / "bench.html.j2").write_text(BLAST_TEMPLATE)
    # No frequency cap: it excludes customers across campaigns, which the hand-written SQL and the
    # peer do not model, so the ids would differ for a reason that is not a bug.
    config = {
        "store": store_url,
        "timezone": "Asia/Shanghai",
        "email": {"from": "Shop <hello@example.com>", **email},
        # the standard campaigns' exclusive groups: win-back offers, and the birthday email or text
        "limits": {"exclusive": {"winback": "60d", "birthday": "300d"}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _ids_of_dry_run(output: str) -> dict:
    import hashlib

    data = json.loads(output)
    return {
        c["campaign"]: {
            "count": len(c["customers"]) + len(c["held_out"]),
            "ids": hashlib.sha256("\n".join(sorted(c["customers"] + c["held_out"])).encode()).hexdigest()[:16],
        }
        for c in data["campaigns"]
    }


def best_of(runs: int, *args: str) -> dict:
    results = [phase(*args) for _ in range(runs)]
    return min(results, key=lambda r: r["seconds"])


def segments(ws: Path, at: str, peer: bool, runs: int) -> dict:
    nudge = (sys.executable, "-m", "engine")
    engine = best_of(runs, "engine", str(ws), at)
    hand = best_of(runs, "hand", str(ws), at)
    cli = phase("command", *nudge, "--workspace", str(ws), "dry-run", "--format", "json", "--at", at)
    if "error" in cli:
        raise SystemExit(f"nudge dry-run failed: {cli['error']}")
    cli_ids = _ids_of_dry_run(cli.pop("stdout"))
    result = {"engine": engine, "hand_sql": hand, "dry_run_cli": {**cli, "campaigns": cli_ids}}
    result["pandas"] = best_of(runs, "pandas", str(ws), at)
    if peer:
        result["peer"] = phase("peer", str(ws), at)
    reference = hand["campaigns"]
    compared = (engine, result["dry_run_cli"], result["pandas"], *(([result["peer"]]) if peer else []))
    result["same_ids"] = {
        name: all(r["campaigns"][name]["ids"] == reference[name]["ids"] for r in compared) for name in reference
    }
    result["audience_sizes"] = {name: v["count"] for name, v in reference.items()}
    return result


def deliver(
    ws: Path, at: str, store_url: str, label: str, env: dict | None = None, campaign: str = BLAST["campaign"]
) -> dict:
    import sqlalchemy as sa

    nudge = (sys.executable, "-m", "engine")
    run = phase("command", *nudge, "--workspace", str(ws), "run", campaign, "--at", at, "--format", "json", env=env)
    if "error" in run:
        raise SystemExit(f"nudge run ({label}) failed: {run['error']}")
    from engine.store.tables import deliveries

    engine = sa.create_engine(store_url)
    moment = datetime.fromisoformat(at).astimezone(timezone.utc).replace(tzinfo=None)
    mine = (deliveries.c.campaign == campaign, deliveries.c.occurrence == moment)
    with engine.connect() as conn:
        sent = conn.execute(sa.select(sa.func.count()).where(*mine, deliveries.c.status == "sent")).scalar()
        other = conn.execute(
            sa.select(sa.func.count()).where(*mine, deliveries.c.status.not_in(["sent", "held_out"]))
        ).scalar()
    engine.dispose()
    run.pop("stdout", None)
    return {**run, "sent": sent, "not_sent": other, "messages_per_second": sent / run["seconds"]}


def outbox_in(folder: Path) -> dict:
    return {"connector": "outbox", "outbox": {"dir": str(folder)}}


def inlining_cost(ws: Path, url: str, at: str, folder: Path) -> dict:
    """The same delivery into memory with `<style>` rules inlined (the default) and not
    (email.inline_css: false), in turns, best of two each: what inlining costs nudge's throughput."""
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for minute, inline in ((4, False), (5, True), (6, False), (7, True)):
        outbox = folder / f"css-{minute}"  # emptied after each run: memory is not unlimited
        workspace(ws, url, {"connector": "outbox", "outbox": {"dir": str(outbox)}, "inline_css": inline})
        print(f"[delivery] outbox in memory, CSS {'inlined' if inline else 'not inlined'}", file=sys.stderr)
        later = datetime.fromisoformat(at).replace(minute=minute).isoformat()
        runs[inline].append(deliver(ws, later, url, f"inline_css {inline}"))
        shutil.rmtree(outbox, ignore_errors=True)
    best = {inline: max(r["messages_per_second"] for r in found) for inline, found in runs.items()}
    return {
        "inlined": best[True],
        "not_inlined": best[False],
        "ratio": best[True] / best[False],
        "runs": {"inlined": runs[True], "not_inlined": runs[False]},
    }


REFERENCE_FILES = 50_000  # bounded: the file system's speed is flat well before this


def files_reference(outbox: Path, sent: int, fsync: bool) -> dict:
    """Plain files of the outbox's average message size, written where the outbox is (flushed to
    disk one by one when `fsync`, as the outbox does by default)."""
    sizes = [entry.stat().st_size for _, entry in zip(range(1000), outbox.glob("*.eml"), strict=False)]
    size = int(sum(sizes) / len(sizes)) if sizes else 3000
    folder = str(outbox.parent / "reference-files")
    return phase("files", folder, str(min(sent, REFERENCE_FILES)), str(size), "1" if fsync else "0")


def delivery_phases(kind: str, ws: Path, url: str, at: str, args, result: dict) -> None:
    """Issue 25's delivery measures against their floors (the bare loop; one and two workers; the
    SendGrid sink from a bare client; personalised and batched), then, unless --lean, the earlier
    comparisons (fsync, memory, CSS inlining, texts, recommendations)."""
    memory = Path("/dev/shm")
    folder = (
        Path(tempfile.mkdtemp(prefix="nudge-bench-outbox-", dir=memory))
        if memory.is_dir() and os.access(memory, os.W_OK)
        else None
    )
    try:
        print(f"[{kind}] delivery against the bare loop, one and two workers", file=sys.stderr)
        result["delivery_floor"] = delivery_floor.measure(ws, at, url, deliver, runs=args.runs)
        print(f"[{kind}] SendGrid: personalised and batched against the sink's reference", file=sys.stderr)
        result["sendgrid"] = sendgrid_bench.measure(
            ws, at, url, deliver, lambda email: workspace(ws, url, email), runs=args.runs
        )
        if args.lean:
            return
        workspace(ws, url, {"connector": "outbox", "outbox": {"dir": "outbox"}})
        print(f"[{kind}] delivering to the outbox", file=sys.stderr)
        result["delivery_outbox"] = deliver(ws, at, url, "outbox")
        sent = result["delivery_outbox"]["sent"]
        result["outbox_reference"] = files_reference(ws / "outbox", sent, fsync=False)
        result["outbox_reference_fsync"] = files_reference(ws / "outbox", sent, fsync=True)
        # Texts beside emails, both into their outboxes (fsync on), before the config changes below.
        result["delivery_channels"] = channels.measure(ws, at, url, deliver)
        # The cost of durability: the same delivery, files not flushed (outbox.fsync: false).
        workspace(ws, url, {"connector": "outbox", "outbox": {"dir": "outbox-nofsync", "fsync": False}})
        print(f"[{kind}] delivering to the outbox without fsync", file=sys.stderr)
        later = datetime.fromisoformat(at).replace(minute=3).isoformat()
        result["delivery_outbox_nofsync"] = deliver(ws, later, url, "outbox without fsync")
        if folder is not None:
            # The same delivery into a folder in memory: what nudge itself costs, without the disk.
            workspace(ws, url, {"connector": "outbox", "outbox": {"dir": str(folder)}})
            print(f"[{kind}] delivering to an outbox in memory", file=sys.stderr)
            later = datetime.fromisoformat(at).replace(minute=2).isoformat()
            result["delivery_outbox_memory"] = deliver(ws, later, url, "outbox in memory")
            result["css_inlining"] = inlining_cost(ws, url, at, folder)
            print(f"[{kind}] a template calling recommend three times, and the plain one", file=sys.stderr)
            result["recommendations"] = recommend.measure(
                ws, at, url, deliver, lambda target: workspace(ws, url, outbox_in(target)), folder
            )
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def run_database(kind: str, files: tuple[Path, Path, int], work: Path, args) -> dict:
    from tests.support.pgserver import PgServer, create_database

    server = None
    if kind == "sqlite":
        url = f"sqlite:///{work / kind / 'bench.db'}"
    else:
        server = PgServer().start()
        url = create_database(server.url())
    try:
        ws = workspace(work / kind, url, {"connector": "outbox", "outbox": {"dir": "outbox"}})
        result: dict = {"database": kind}
        print(f"[{kind}] importing {files[2]:,} events", file=sys.stderr)
        result["import"] = phase("import", str(ws), str(files[0]), str(files[1]))
        print(f"[{kind}] the import's floor: bare inserts of the same records", file=sys.stderr)
        result["import_floor"] = import_floor.measure(ws, files, url)
        at = AT.isoformat()
        print(f"[{kind}] posting events to nudge serve", file=sys.stderr)
        result["ingest_http"] = ingest_http.measure(ws, files[1])
        print(f"[{kind}] evaluating the four campaigns", file=sys.stderr)
        result["segments"] = segments(ws, at, peer=not args.no_peer, runs=args.runs)
        print(f"[{kind}] start-up: nudge dry-run's imports against the third-party floor", file=sys.stderr)
        result["startup"] = startup.measure(ws, at, runs=5 * args.runs)  # median of 10 by default
        if not args.no_delivery:
            delivery_phases(kind, ws, url, at, args, result)
        return result
    finally:
        if server is not None:
            server.stop()


def versions() -> dict:
    import importlib.metadata as md

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "commit": commit or None,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        **{p: md.version(p) for p in ("sqlalchemy", "psycopg", "jinja2", "sendgrid")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="10k", help="customers: 1k, 10k, 100k, 1m (events ≈ 10×)")
    parser.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--runs", type=int, default=2, help="best of N for the engine and hand-SQL timings")
    parser.add_argument("--no-peer", action="store_true", help="skip the per-customer Python peer")
    parser.add_argument("--no-delivery", action="store_true", help="skip the delivery phases")
    parser.add_argument(
        "--lean", action="store_true", help="only issue 25's ratios to their floors (skip the earlier comparisons)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    customers = scale_to_int(args.scale)
    work = Path(tempfile.mkdtemp(prefix="nudge-bench-"))
    try:
        print(f"generating {customers:,} customers", file=sys.stderr)
        files = generate(customers, work / "data")
        results = {
            "scale": args.scale,
            "customers": customers,
            "events": files[2],
            "at": AT.isoformat(),
            "started": datetime.now(timezone.utc).isoformat(),
            "versions": versions(),
            "databases": [],
        }
        for kind in args.db.split(","):
            results["databases"].append(run_database(kind.strip(), files, work, args))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from .report import print_table

    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{time.strftime('%Y%m%dT%H%M%S')}-{args.scale}.json"
    target.write_text(json.dumps(results, indent=2))
    print(f"results: {target}", file=sys.stderr)
    if not all(all(d["segments"]["same_ids"].values()) for d in results["databases"]):
        raise SystemExit("ids differ between nudge and the reference: see the JSON file")


if __name__ == "__main__":
    main()
