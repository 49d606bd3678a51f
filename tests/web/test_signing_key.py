"""The key that signs unsubscribe links without NUDGE_SECRET: a per-workspace secret file (mode
0600, git-ignored, created once even by processes starting together), never the public development
key; links that key signed are refused by a real `nudge serve`, links the workspace key signed keep
working across restarts, both the opaque ones sent now and the readable ones sent before."""

from __future__ import annotations

import email
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.core.errors import UserInputError
from engine.messages.unsubscribe import DEVELOPMENT_SECRET, SECRET_FILE, secret_from, workspace_secret
from engine.store.tables import customers, suppressions
from tests.support.helpers import email_campaign, wait_until, write_workspace
from tests.support.pgserver import free_port
from tests.support.store import ROOT, seed
from tests.support.tokens import legacy_sign, readable

AT = "2026-06-01T09:00:00+00:00"


def without_secret() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NUDGE_SECRET"}


def answer(url: str, one_click: bool) -> tuple[int, str]:
    data = urllib.parse.urlencode({"List-Unsubscribe": "One-Click"}).encode() if one_click else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Serve:
    """A real `nudge serve` process on a free port."""

    def __init__(self, root: Path, port: int):
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine", "--workspace", str(root), "serve", "--port", str(port)],
            cwd=ROOT,
            env=without_secret(),
            stderr=subprocess.PIPE,
            text=True,
        )

    def __enter__(self) -> Serve:
        def up() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2).status == 200
            except OSError:
                return self.process.poll() is not None

        assert wait_until(up, 120) and self.process.poll() is None, self.process.stderr.read()
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        _, self.stderr = self.process.communicate(timeout=30)


def rows(store, table) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table)).all()


def test_without_nudge_secret_forged_links_change_nothing_and_real_ones_work_after_a_restart(store, tmp_path):
    seed(
        store,
        customers=[
            {"id": "ann", "email": "ann@example.com", "email_opt_in": True, "country": "US"},
            {"id": "bob", "email": "bob@example.com", "email_opt_in": True, "country": "CA"},
            {"id": "cyd", "email": "cyd@example.com", "email_opt_in": True, "country": "CA"},
        ],
    )
    port = free_port()
    ws = write_workspace(
        tmp_path / "ws",
        [email_campaign(cooldown="0d")],
        config={"store": store.url, "email": {"unsubscribe_url": f"http://127.0.0.1:{port}/unsubscribe"}},
    )
    command = [sys.executable, "-m", "engine", "--workspace", str(ws.root)]
    sent = subprocess.run([*command, "run", "--at", AT], cwd=ROOT, env=without_secret(), capture_output=True, text=True)
    assert sent.returncode == 0, sent.stderr
    key_file = ws.root / SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [eml] = (ws.root / "outbox").glob("*.eml")
    link = email.message_from_bytes(eml.read_bytes(), policy=policy.default)["List-Unsubscribe"].strip("<>")
    assert readable(link.rsplit("/", 1)[1], "ann@example.com", "promo") == []

    base = f"http://127.0.0.1:{port}/unsubscribe/"
    now = datetime.now(timezone.utc)
    # A link in mail sent before opaque tokens: readable, signed with this workspace's key.
    before = base + legacy_sign(key_file.read_text().strip().encode(), "cyd", "cyd@example.com", "promo", now)
    with Serve(ws.root, port):
        # What the attacker did: sign with the public development key, naming anyone.
        for who in (("bob", "bob@example.com"), ("ann", "ann@example.com"), ("x", "stranger@example.com")):
            forged = legacy_sign(DEVELOPMENT_SECRET, *who, "promo", now)
            status, text = answer(base + forged, one_click=True)
            assert status == 410 and "not secret" in text, (status, text)
            assert answer(base + forged, one_click=False)[0] == 410
        assert rows(store, suppressions) == []
        assert answer(link, one_click=False)[0] == 200  # the real link: the confirmation page
    key = key_file.read_bytes()
    with Serve(ws.root, port) as second:  # a new process reads the same key: the old link still works
        for old_or_new in (link, before):
            status, text = answer(old_or_new, one_click=True)
            assert status == 200 and "You are unsubscribed" in text
    assert key_file.read_bytes() == key and "development key" not in second.stderr
    assert sorted((r.email, r.reason) for r in rows(store, suppressions)) == [
        ("ann@example.com", "unsubscribe"),
        ("cyd@example.com", "unsubscribe"),
    ]
    with store.engine.connect() as conn:
        unsubscribed = dict(conn.execute(sa.select(customers.c.id, customers.c.unsubscribed_at)).all())
    assert unsubscribed["ann"] is not None and unsubscribed["cyd"] is not None and unsubscribed["bob"] is None


RACER = """
import os, sys, time
from pathlib import Path
from engine.messages.unsubscribe import workspace_secret
start = float(sys.argv[2])
while time.time() < start:
    pass
print(workspace_secret(Path(sys.argv[1])).decode())
"""


def test_processes_starting_together_end_with_one_key(tmp_path):
    start = time.time() + 1.5
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(start)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    keys = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert len(keys) == 1 and keys == {(tmp_path / SECRET_FILE).read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]  # no temporary file left behind
    assert workspace_secret(tmp_path).decode() in keys  # and every later start reads the same one


def test_nudge_secret_wins_and_a_key_others_can_read_is_refused(tmp_path):
    assert secret_from({"NUDGE_SECRET": "from-env"}, tmp_path, required=False) == b"from-env"
    assert not (tmp_path / SECRET_FILE).exists()
    with pytest.raises(KeyError):
        secret_from({}, tmp_path, required=True)  # real connectors still need NUDGE_SECRET
    with pytest.raises(UserInputError, match="public development key"):
        secret_from({"NUDGE_SECRET": DEVELOPMENT_SECRET.decode()}, tmp_path, required=False)
    key = secret_from({}, tmp_path, required=False)
    assert len(key) >= 40 and key != DEVELOPMENT_SECRET
    (tmp_path / SECRET_FILE).chmod(0o644)
    with pytest.raises(UserInputError) as caught:
        workspace_secret(tmp_path)
    assert f"{tmp_path / SECRET_FILE}: error: the signing key is open to other users (mode 0644)" in str(caught.value)


def test_serve_with_a_readable_key_file_says_which_file_and_exits_2(tmp_path):
    ws = write_workspace(tmp_path / "ws", [email_campaign()])
    (ws.root / SECRET_FILE).write_text("k" * 43 + "\n")
    (ws.root / SECRET_FILE).chmod(0o640)
    served = subprocess.run(
        [sys.executable, "-m", "engine", "--workspace", str(ws.root), "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=without_secret(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 2 and "Traceback" not in served.stderr
    assert f"{SECRET_FILE}: error: the signing key is open to other users (mode 0640)" in served.stderr


def test_both_gitignores_keep_the_key_out_of_git(tmp_path):
    from click.testing import CliRunner

    from engine.cli.main import main

    assert CliRunner().invoke(main, ["init", str(tmp_path / "shop")]).exit_code == 0
    for repository in (tmp_path / "shop", ROOT):
        if repository == tmp_path / "shop":
            subprocess.run(["git", "init", "-q", str(repository)], check=True)
        for name in (SECRET_FILE, f"{SECRET_FILE}.123.ab.tmp"):
            ignored = subprocess.run(["git", "-C", str(repository), "check-ignore", "-q", name])
            assert ignored.returncode == 0, (repository, name)
