"""The benchmark runs end to end at a tiny scale, so it cannot rot. No timings are asserted."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.store import ROOT


def test_benchmark_smoke_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "300", "--runs", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ratio nudge engine / hand SQL" in done.stdout
    assert "ratio import events nudge / floor" in done.stdout and "ratio 1 worker / floor" in done.stdout
    [result] = tmp_path.glob("*.json")
    data = json.loads(result.read_text())
    assert [d["database"] for d in data["databases"]] == ["sqlite", "postgresql"]
    for db in data["databases"]:
        assert all(db["segments"]["same_ids"].values())
        http = db["ingest_http"]  # the same events posted to nudge serve (gunicorn) and imported from a file
        assert http["events"] == http["file_import"]["events"] > 0
        assert db["startup"]["dry_run_imports_seconds"] > 0 and db["startup"]["floor_imports_seconds"] > 0
        assert db["delivery_outbox"]["sent"] > 0 and db["delivery_outbox"]["not_sent"] == 0
        # Each floor was measured beside nudge, on the same records and messages.
        floor = db["import_floor"]
        assert floor["events"] == db["import"]["events"] and floor["customers"] == db["import"]["customers"]
        assert db["delivery_floor"]["floor"]["messages"] > 0 and db["delivery_floor"]["one_worker"] > 0
        for kind in ("personal", "batched"):  # every SendGrid message reached the sink, nothing left unsent
            run = db["sendgrid"][kind]
            assert run["sink_received"] == run["sent"] > 0 and run["not_sent"] == 0
        assert db["sendgrid"]["batched"]["requests"] < db["sendgrid"]["batched"]["sent"]  # shared requests
        # Texts beside emails: the same customers reached, every run, nothing left unsent.
        runs = db["delivery_channels"]["runs"]
        assert len({r["sent"] for r in runs["email"] + runs["sms"]}) == 1 and runs["sms"][0]["sent"] > 0
        assert {r["not_sent"] for r in runs["email"] + runs["sms"]} == {0}
        if "css_inlining" in db:  # where /dev/shm is writable: the same delivery, CSS inlined and not
            runs = db["css_inlining"]["runs"]
            assert {r["sent"] for r in runs["inlined"] + runs["not_inlined"]} == {db["delivery_outbox"]["sent"]}
    growth = subprocess.run(
        [sys.executable, "-m", "bench.growth", str(result)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert growth.stdout.count("| 300 |") == 2  # a row per database
