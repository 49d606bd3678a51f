"""Chaos, bounded: three real `nudge daemon` processes on one PostgreSQL store, SIGKILLed and
SIGSTOPped at random (stops longer than the lease included), sending through an SMTP server that
drops some of its connections. Afterwards the sink and the ledger must agree: nobody got an
occurrence twice, and every row is `sent` (it arrived), `failed` with a reason, or `unknown` only
where the message may have arrived and the sink cannot tell."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
import yaml

from engine.store.tables import deliveries, occurrences
from tests.support.helpers import nudge_process, smtp_config, wait_until
from tests.support.smtpserver import DroppingSmtpServer
from tests.support.store import make_store, seed

CUSTOMERS = 150
# Another seed gives another sequence of kills, pauses and cuts: NUDGE_CHAOS_SEED=… to explore.
SEED = int(os.environ.get("NUDGE_CHAOS_SEED", "19"))
CHAOS_SECONDS = 40  # at least; and on until the chaos has met enough work (ENOUGH)
LEASE = "2s"
# What the chaos must have met before it ends, however slow the machine: occurrences planned
# (a daemon that is killed or paused before it has even started does nothing), kills, pauses.
ENOUGH_OCCURRENCES, ENOUGH_KILLS, ENOUGH_PAUSES = 3, 5, 5
CHAOS_LIMIT_SECONDS = 600  # a guard against daemons that never get anywhere, not a timing


def workspace(root: Path, store_url: str, port: int) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(smtp_config(store_url, port, batch_size=20, lease=LEASE)))
    write_rule(root, {"every": "10s"})
    (root / "templates" / "pulse.html.j2").write_text("<p>Hi {{ customer.first_name }}: {{ coupons.pulse.code }}</p>\n")
    return root


def write_rule(root: Path, schedule) -> None:
    rule = {
        "campaign": "pulse",
        "schedule": schedule,
        "cooldown": "0d",
        "audience": {"attribute": "country", "eq": "US"},
        "actions": [
            {"coupon": {"name": "pulse", "percent_off": 5, "valid_for": "1d"}},
            {"email": {"template": "pulse.html.j2", "subject": "Pulse for {{ customer.first_name }}"}},
        ],
    }
    (root / "rules" / "pulse.yaml").write_text(yaml.safe_dump(rule))


def start_daemon(ws: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """A daemon appending to `log`, and where in the log its own lines begin."""
    begins = log.stat().st_size if log.exists() else 0
    return nudge_process(ws, "daemon", stderr=log.open("ab")), begins


def started(log: Path, begins: int) -> bool:
    """Has the daemon whose lines begin there loaded its rules and opened the store?"""
    with log.open("rb") as text:
        text.seek(begins)
        return b"daemon started as" in text.read()


def occurrences_planned(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count(sa.distinct(deliveries.c.occurrence)))).scalar_one()


def settled(store) -> bool:
    with store.engine.connect() as conn:
        busy = conn.execute(
            sa.select(sa.func.count()).where(deliveries.c.status.in_(["pending", "sending"]))
        ).scalar_one()
        open_ones = conn.execute(sa.select(sa.func.count()).where(occurrences.c.status != "done")).scalar_one()
    return busy == 0 and open_ones == 0


def test_three_daemons_under_kills_and_pauses_with_a_dropping_smtp_server_agree_with_the_sink(tmp_path, request):
    store = make_store("postgresql", tmp_path, request)
    seed(
        store,
        customers=[
            {"id": f"c{i:03d}", "first_name": f"N{i}", "email": f"c{i}@example.com", "email_opt_in": True}
            | {"country": "US"}
            for i in range(CUSTOMERS)
        ],
    )
    chance = random.Random(SEED)
    logs = [tmp_path / f"daemon{i}.log" for i in range(3)]
    kills = pauses = 0
    with DroppingSmtpServer(rate=0.03, seed=SEED) as server:
        ws = workspace(tmp_path / "ws", store.url, server.port)
        daemons, begins = map(list, zip(*(start_daemon(ws, log) for log in logs), strict=True))
        paused: dict[int, float] = {}  # daemon index → when to wake it
        try:
            # Chaos for CHAOS_SECONDS, and on until it has met enough work: on a loaded machine a
            # daemon may take seconds to start, and killed or paused before then it does nothing.
            start = time.monotonic()
            while time.monotonic() < start + CHAOS_SECONDS or not (
                kills >= ENOUGH_KILLS and pauses >= ENOUGH_PAUSES and occurrences_planned(store) >= ENOUGH_OCCURRENCES
            ):
                assert time.monotonic() < start + CHAOS_LIMIT_SECONDS, (
                    f"the daemons never got anywhere: {kills} kills, {pauses} pauses, "
                    f"{occurrences_planned(store)} occurrences"
                )
                time.sleep(chance.uniform(0.3, 1.5))
                for index, wake in list(paused.items()):
                    if time.monotonic() >= wake:
                        daemons[index].send_signal(signal.SIGCONT)
                        del paused[index]
                index = chance.randrange(3)
                if index in paused or not started(logs[index], begins[index]):
                    continue
                if chance.random() < 0.5:
                    daemons[index].send_signal(signal.SIGKILL)
                    daemons[index].wait()
                    daemons[index], begins[index] = start_daemon(ws, logs[index])
                    kills += 1
                else:
                    daemons[index].send_signal(signal.SIGSTOP)
                    paused[index] = time.monotonic() + chance.uniform(0.5, 5.0)  # often past the lease
                    pauses += 1
            for index in paused:
                daemons[index].send_signal(signal.SIGCONT)
            # No new ticks from now on; the daemons finish (and take over) what is open.
            write_rule(ws, "0 0 1 1 *")
            assert wait_until(lambda: settled(store), 300), "occurrences left unfinished"  # a bound, not a timing
        finally:
            for process in daemons:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
            for process in daemons:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
        recorder = server.recorder
    errors = "".join(log.read_text(errors="replace") for log in logs)
    assert "Traceback" not in errors
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries)).all()
    assert kills >= ENOUGH_KILLS and pauses >= ENOUGH_PAUSES
    arrived = Counter(recorder.arrived)
    assert [i for i, n in arrived.items() if n > 1] == []  # 0 duplicates
    by_status: dict[str, set[str]] = {}
    for row in rows:
        by_status.setdefault(row.status, set()).add(str(row.id))
    assert set(by_status) <= {"sent", "failed", "unknown"}  # nothing stuck, nothing pending
    assert all(row.reason for row in rows if row.status == "failed")
    assert by_status["sent"] <= set(arrived)  # every `sent` arrived
    assert set(arrived) <= by_status["sent"] | by_status.get("unknown", set())  # every arrival is on the ledger
    # `unknown` only where the message may have arrived: it did, or its DATA step began and was cut.
    to = {str(row.id): f"c{int(row.customer_id[1:])}@example.com" for row in rows}
    arrivals_to = Counter(to[i] for i in arrived)
    unknown_unseen = Counter(to[i] for i in by_status.get("unknown", set()) - set(arrived))
    for address, count in unknown_unseen.items():
        assert recorder.data_started.get(address, 0) - arrivals_to[address] >= count, address
    per_occurrence = Counter(row.occurrence for row in rows)
    assert len(per_occurrence) >= ENOUGH_OCCURRENCES
    assert set(per_occurrence.values()) == {CUSTOMERS}  # everyone, every tick
    with store.engine.connect() as conn:
        coupons = conn.execute(sa.text("SELECT count(*), count(DISTINCT delivery_id) FROM coupons")).one()
    assert coupons[0] == coupons[1] == len(rows)  # one code per ledger row, never a second
    print(
        f"chaos: {kills} kills, {pauses} pauses, {len(per_occurrence)} occurrences, {len(rows)} rows, "
        f"{len(arrived)} arrived, cuts {dict(recorder.cuts)}, "
        f"statuses {Counter(row.status for row in rows)}"
    )
    store.dispose()
