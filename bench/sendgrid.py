"""SendGrid delivery against a reference-fast sink (issue 25), in the same run:

- the reference: the local sink (tests/support/sendgrid_server.py, asyncio) answering one-recipient
  requests of nudge's average request size from the fastest bare client we have (bench/sink_client.py);
- nudge personalised: `nudge run` of a campaign greeting each customer by name (one request each);
- nudge batched: the same audience and layout, content identical apart from each recipient's
  unsubscribe and preferences links (a newsletter), so requests carry many personalizations.

Targets: personalised ≥ 0.8× the reference's requests/s; batched ≥ 3× personalised (messages/s).

python -m bench.sendgrid --scale 100k [--db sqlite,postgresql] [--runs N]   → JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml

from .generate import AT, delivery_campaign

KEY = "SG.bench"
ENV = {"SENDGRID_API_KEY": KEY, "NUDGE_SECRET": "bench-secret-0123456789"}
CONCURRENCY = 8  # the connector's threads, and the bare client's connections
REFERENCE_REQUESTS = 30_000
PARAGRAPH = "<p>New in the shop this week: linen shirts, summer dresses and a few things for the garden.</p>"
TEMPLATES = {
    "personal": '{% extends "_layout.html.j2" %}{% block content %}<h1>Hi {{ customer.first_name }}</h1>'
    + PARAGRAPH
    + "{% endblock %}\n",
    # The same size, nothing of the customer's but the layout's links.
    "newsletter": '{% extends "_layout.html.j2" %}{% block content %}<h1>Hi there, friend</h1>'
    + PARAGRAPH
    + "{% endblock %}\n",
}
# Occurrence minutes: none shared with the other delivery phases' occurrences.
TURNS = ((40, "personal"), (41, "newsletter"), (42, "personal"), (43, "newsletter"))

Deliver = Callable[..., dict]


def campaign(kind: str) -> dict:
    return delivery_campaign(
        f"bench-sendgrid-{kind}",
        f"SendGrid benchmark: {kind} content.",
        [{"email": {"template": f"bench_sendgrid_{kind}.html.j2", "subject": "News from the shop"}}],
    )


def sendgrid_email(host: str) -> dict:
    """The workspace's `email` section for the sink."""
    return {
        "connector": "sendgrid",
        "unsubscribe_url": "https://shop.example/unsubscribe",
        "sendgrid": {"host": host, "concurrency": CONCURRENCY},
    }


def _reference(host: str, requests: int, size: int) -> dict:
    """The bare client in a process of its own (as nudge is)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.phase", "sink", host, str(requests), KEY, str(size)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the sink's reference failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout)


def measure(
    ws: Path,
    at: str,
    store_url: str,
    deliver: Deliver,
    email_config: Callable[[dict], None],
    runs: int = 1,
    reference_requests: int = REFERENCE_REQUESTS,
) -> dict:
    """Both campaigns through `nudge run` into the sink in turns (best of `runs` each), then the
    sink's reference; `email_config(section)` writes the workspace's `email` section."""
    from tests.support.sendgrid_server import SendgridServer

    for kind, text in TEMPLATES.items():
        (ws / "rules" / f"bench-sendgrid-{kind}.yaml").write_text(yaml.safe_dump(campaign(kind), sort_keys=False))
        (ws / "templates" / f"bench_sendgrid_{kind}.html.j2").write_text(text)
    found: dict[str, list[dict]] = {kind: [] for kind in TEMPLATES}
    with SendgridServer(api_key=KEY, record=False) as sink:
        email_config(sendgrid_email(sink.host))
        for minute, kind in TURNS[: 2 * runs]:
            print(f"[sendgrid] nudge run, {kind} content", file=sys.stderr)
            before = (sink.accepted_count, sink.request_count, sink.body_bytes)
            moment = datetime.fromisoformat(at).replace(minute=minute).isoformat()
            run = deliver(ws, moment, store_url, f"sendgrid {kind}", env=ENV, campaign=f"bench-sendgrid-{kind}")
            run["sink_received"] = sink.accepted_count - before[0]
            run["requests"] = sink.request_count - before[1]
            run["request_bytes"] = (sink.body_bytes - before[2]) / max(run["requests"], 1)
            found[kind].append(run)
        personal = max(found["personal"], key=lambda r: r["messages_per_second"])
        print("[sendgrid] the sink's own speed from a bare client (reference)", file=sys.stderr)
        size = int(personal["request_bytes"])
        reference = _reference(sink.host, min(max(personal["sent"], 1000), reference_requests), size)
    batched = max(found["newsletter"], key=lambda r: r["messages_per_second"])
    return {
        "reference": {**reference, "request_bytes": size},
        "personal": personal,
        "batched": batched,
        "personalizations_per_request": batched["sink_received"] / max(batched["requests"], 1),
        "ratio_personal_to_reference": personal["messages_per_second"] / reference["requests_per_second"],
        "ratio_batched_to_personal": batched["messages_per_second"] / personal["messages_per_second"],
        "runs": found,
    }


def table_rows(row: Callable[[str, Callable[[dict], str]], None], number: Callable[..., str]) -> None:
    """The report's lines: the sink's reference, nudge personalised and batched, their ratios."""
    row(
        "reference: SendGrid sink from a bare client: requests/s",
        lambda d: number(d["sendgrid"]["reference"]["requests_per_second"], 0),
    )
    row(
        "SendGrid personalised (one request each): msg/s",
        lambda d: number(d["sendgrid"]["personal"]["messages_per_second"], 0),
    )
    row("SendGrid batched (newsletter): msg/s", lambda d: number(d["sendgrid"]["batched"]["messages_per_second"], 0))
    row("SendGrid batched: recipients per request", lambda d: number(d["sendgrid"]["personalizations_per_request"], 0))
    row(
        "ratio personalised / sink reference (target ≥ 0.8)",
        lambda d: number(d["sendgrid"]["ratio_personal_to_reference"]),
    )
    row("ratio batched / personalised (target ≥ 3)", lambda d: number(d["sendgrid"]["ratio_batched_to_personal"]))


def _database(kind: str, work: Path, files, runs: int) -> dict:
    from bench.__main__ import deliver, phase, workspace
    from tests.support.pgserver import PgServer, create_database

    server = PgServer().start() if kind == "postgresql" else None
    try:
        url = create_database(server.url()) if server else f"sqlite:///{work / kind / 'bench.db'}"
        ws = workspace(work / kind, url, {"connector": "outbox", "outbox": {"dir": "outbox"}})
        print(f"[{kind}] importing {files[2]:,} events", file=sys.stderr)
        phase("import", str(ws), str(files[0]), str(files[1]))
        result = measure(ws, AT.isoformat(), url, deliver, lambda email: workspace(ws, url, email), runs=runs)
        return {"database": kind, "sendgrid": result}
    finally:
        if server is not None:
            server.stop()


def main() -> None:
    from bench.generate import generate, scale_to_int

    parser = argparse.ArgumentParser(prog="python -m bench.sendgrid", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="10k", help="customers: 1k, 10k, 100k, 1m (13%% of them are emailed)")
    parser.add_argument("--db", default="sqlite", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--runs", type=int, default=1, help="best of N for each delivery")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nudge-bench-sendgrid-"))
    try:
        files = generate(scale_to_int(args.scale), work / "data")
        found = [_database(kind.strip(), work, files, args.runs) for kind in args.db.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump({"scale": args.scale, "databases": found}, sys.stdout, indent=2)
    print(file=sys.stderr)
    for database in found:

        def show(label: str, value: Callable[[dict], str], d: dict = database) -> None:
            print(f"[{d['database']}] {label}: {value(d)}", file=sys.stderr)

        table_rows(show, lambda v, digits=2: f"{v:,.{digits}f}")


if __name__ == "__main__":
    main()
