"""A customer's data rights, on both databases: export everything held, erase it (keeping only the
hashes that never-twice and suppression need), and keep events no longer than configured."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.main import main
from engine.store.privacy import address_hash, id_hash
from engine.store.tables import consent_log, deliveries, metadata, subscriptions, suppressions
from tests.support.helpers import write_workspace
from tests.support.store import NOW, seed

ADA = {
    "id": "cust-ada-7",
    "first_name": "Adalind",
    "last_name": "Lovelace",
    "email": "Ada.Lovelace@example.org",
    "phone": "+44 20 7946 0018",
    "email_opt_in": True,
    "country": "US",
    "city": "Marylebone",
}
BOB = {"id": "cust-bob-2", "first_name": "Bob", "email": "bob@example.org", "email_opt_in": True, "country": "US"}
PERSONAL = [
    "cust-ada-7",
    "Adalind",
    "Lovelace",
    "ada.lovelace@example.org",
    "ada.old",
    "7946",
    "Marylebone",
    "Rue Morgue",
]
CAMPAIGN = {
    "campaign": "promo",
    "schedule": "0 9 * * *",
    "cooldown": "0d",
    "audience": {"attribute": "country", "eq": "US"},
    "actions": [
        {"coupon": {"name": "promo", "percent_off": 10, "valid_for": "7d"}},
        {"email": {"template": "coupon.html.j2", "subject": "Hi {{ customer.first_name }}"}},
        {"task": {"queue": "care", "title": "Call {{ customer.first_name }} {{ customer.last_name }}"}},
    ],
}


def nudge(ws, *args: str, code: int = 0):
    result = CliRunner().invoke(main, ["--workspace", str(ws), *args], env={"NUDGE_SECRET": "s"})
    assert result.exit_code == code, result.output
    return result


def everything(store) -> str:
    """Every row of every table, as text: where personal data would show."""
    with store.engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in metadata.sorted_tables for row in conn.execute(sa.select(table))
        ).lower()


def test_export_then_forget_leaves_nothing_personal_and_contacts_nobody_twice(store, tmp_path):
    seed(
        store,
        customers=[ADA, BOB],
        events=[
            {
                "customer_id": "cust-ada-7",
                "type": "purchase",
                "occurred_at": NOW - timedelta(days=3),
                "amount": 30,
                "address": "Rue Morgue",
            },
        ],
    )
    config = {"store": store.url, "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    ws = write_workspace(tmp_path / "ws", [CAMPAIGN], config=config).root
    nudge(ws, "run", "--at", NOW.isoformat())
    nudge(ws, "suppressions", "add", "ada.lovelace@example.org", "--reason", "unsubscribe")
    # An address she had before, and a provider's refusal that quoted it.
    nudge(ws, "suppressions", "add", "ada.old@example.net", "--reason", "bounce")
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.customer_id == "cust-ada-7")
            .values(email="ada.old@example.net", reason="550 5.1.1 <ada.old@example.net>: mailbox unknown")
        )

    exported = json.loads(nudge(ws, "export-customer", "cust-ada-7").stdout)
    assert exported["customer"]["email"] == "ada.lovelace@example.org"  # stored lower-cased
    assert [e["type"] for e in exported["events"]] == ["purchase"]
    assert [m["status"] for m in exported["messages"]] == ["sent"]
    assert exported["messages"][0]["email"] == "ada.old@example.net"
    assert len(exported["coupons"]) == 1 and exported["tasks"][0]["title"] == "Call Adalind Lovelace"
    assert exported["suppressions"][0]["reason"] == "unsubscribe"
    target = tmp_path / "exports" / "ada.json"  # a folder that does not exist yet is made
    nudge(ws, "export-customer", "cust-ada-7", "-o", str(target))
    assert json.loads(target.read_text()) == exported

    forgot = nudge(ws, "forget", "cust-ada-7")
    assert "forgot cust-ada-7" in forgot.stdout
    text = everything(store)
    assert not [value for value in PERSONAL if value.lower() in text]
    assert "forgotten:" in text and "sha256:" in text  # what never-twice and suppression need
    # The reports still add up: the delivery is counted, under its hash.
    report = json.loads(nudge(ws, "report", "--format", "json").stdout)
    assert report["campaigns"][0]["sent"] == 2

    # A rerun reaches Bob again and nobody else; a nightly import that still has Ada skips her.
    nudge(ws, "run", "--at", (NOW + timedelta(days=1)).isoformat())
    recipients = sorted(
        "ada" if "ada.lovelace" in p.read_text().lower() else "bob" for p in (ws / "outbox").glob("*.eml")
    )
    assert recipients == ["ada", "bob", "bob"]  # Ada's one email is from before she was forgotten
    people = tmp_path / "people.jsonl"
    people.write_text(json.dumps(ADA) + "\n" + json.dumps(BOB) + "\n")
    imported = nudge(ws, "import", "customers", str(people))
    assert "1 forgotten (nudge forget) skipped" in imported.output
    history = tmp_path / "events.jsonl"
    history.write_text(
        json.dumps({"customer_id": "cust-ada-7", "type": "purchase", "occurred_at": NOW.isoformat()}) + "\n"
    )
    assert "1 forgotten (nudge forget) skipped" in nudge(ws, "import", "events", str(history)).output
    assert not [value for value in PERSONAL if value.lower() in everything(store)]
    nudge(ws, "forget", "cust-ada-7", code=2)  # nothing left to forget: says so

    # She signs up again under a new id with the same address: her unsubscribe still holds, in planning.
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps({**ADA, "id": "cust-ada-new"}) + "\n")
    nudge(ws, "import", "customers", str(again))
    (plan,) = json.loads(nudge(ws, "dry-run", "promo", "--format", "json", "--at", NOW.isoformat()).stdout)["campaigns"]
    assert "cust-ada-new" not in plan["customers"] and plan["excluded"]["no_consent"] == 1
    # Suppressed again in plain text (a provider's bounce), then forgotten again: one hash stays.
    nudge(ws, "suppressions", "add", "ada.lovelace@example.org", "--reason", "bounce")
    nudge(ws, "forget", "cust-ada-new")
    assert not [value for value in PERSONAL if value.lower() in everything(store)]
    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(suppressions.c.email)).scalars().all()
    assert sorted(kept) == sorted(address_hash(a) for a in ("ada.lovelace@example.org", "ada.old@example.net"))


def test_forget_keeps_the_consent_log_hashed_and_export_shows_it(store, tmp_path):
    topics = {"promotions": {"label": "Offers"}, "newsletter": {"label": "News"}}
    ws = write_workspace(tmp_path / "ws", [CAMPAIGN], config={"store": store.url, "topics": topics}).root
    people = tmp_path / "crm.csv"
    people.write_text(
        "id,email,phone,country,email_opt_in,sms_opt_in,topics.newsletter\n"
        "cust-ada-7,Ada.Lovelace@example.org,138 0013 8000,CN,true,true,false\n"
        "cust-bob-2,bob@example.org,,US,true,,\n"
    )
    nudge(ws, "import", "customers", str(people))
    nudge(ws, "suppressions", "add", "ada.lovelace@example.org", "--reason", "complaint")
    nudge(ws, "suppressions", "add", "+8613800138000", "--reason", "stop")  # her number, as an SMS STOP leaves it
    with store.engine.begin() as conn:  # a text message she was sent
        sent = {"campaign": "promo", "customer_id": "cust-ada-7", "occurrence": NOW, "status": "sent"}
        conn.execute(
            sa.insert(deliveries).values(**sent, channel="sms", phone="+8613800138000", created_at=NOW, updated_at=NOW)
        )
    exported = json.loads(nudge(ws, "export-customer", "cust-ada-7").stdout)
    assert [
        (e["channel"], e["topic"], e["change"], e["old_value"], e["new_value"], e["source"])
        for e in exported["consent_log"]
    ] == [
        ("email", None, "opt_in", "false", "true", "import crm.csv"),
        ("sms", None, "opt_in", "false", "true", "import crm.csv"),
        (None, "newsletter", "topic", "true", "false", "import crm.csv"),
        ("email", None, "suppression", None, "complaint", "operator"),
        ("sms", None, "suppression", None, "stop", "operator"),
    ]
    assert exported["consent_log"][1]["address"] == "+8613800138000"
    assert [(s["topic"], s["subscribed"]) for s in exported["subscriptions"]] == [("newsletter", False)]

    nudge(ws, "forget", "cust-ada-7")
    with store.engine.connect() as conn:
        log = conn.execute(sa.select(consent_log).order_by(consent_log.c.id)).all()
        left = conn.execute(sa.select(subscriptions.c.customer_id)).scalars().all()
    ada = [entry for entry in log if entry.customer_id != "cust-bob-2"]
    assert {entry.customer_id for entry in ada} == {id_hash("cust-ada-7")}
    assert [entry.change for entry in ada] == ["opt_in", "opt_in", "topic", "suppression", "suppression", "forget"]
    assert [entry.address for entry in ada] == [
        address_hash("ada.lovelace@example.org"),
        address_hash("+8613800138000"),
        None,
        address_hash("ada.lovelace@example.org"),
        address_hash("+8613800138000"),
        None,
    ]
    assert ada[-1].source == "operator" and left == []
    with store.engine.connect() as conn:  # both stay suppressed, as hashes
        kept = set(conn.execute(sa.select(suppressions.c.email)).scalars())
    assert kept == {address_hash("ada.lovelace@example.org"), address_hash("+8613800138000")}
    assert not [value for value in ("cust-ada-7", "ada.lovelace", "8613800138000") if value in everything(store)]


def test_retention_deletes_old_events_daily(store, tmp_path):
    from engine.delivery.daemon import Daemon
    from tests.support.helpers import Clock, make_runner

    seed(
        store,
        customers=[BOB],
        events=[
            {"customer_id": "cust-bob-2", "type": "purchase", "occurred_at": NOW - timedelta(days=days)}
            for days in (1, 29, 31, 400)
        ],
    )
    config = {"store": store.url, "retention": {"events": "30d"}}
    ws = write_workspace(tmp_path / "ws", [CAMPAIGN], config=config)
    clock = Clock(NOW)
    daemon = Daemon(runner=make_runner(ws, store, clock), started_at=NOW)
    daemon.step(NOW)
    with store.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
    assert left == 2  # 1 and 29 days old


# Her phone, both versions ("+44 20 7946 0999" before the update), as stored (E.164): long enough not to
# occur by chance in a hash.
RAW_PERSONAL = [b"ada.lovelace@example.org", b"Adalind", b"Lovelace", b"+44207946", b"Marylebone", b"Rue Morgue"]


@pytest.fixture
def sqlite_built_without_secure_delete(monkeypatch):
    """SQLite's own default (Debian builds turn secure_delete on, python.org's and most others do not):
    every connection this process opens starts with secure_delete off."""
    connect = sqlite3.connect

    def without(*args, **kwargs):
        connection = connect(*args, **kwargs)
        connection.execute("PRAGMA secure_delete=OFF")
        return connection

    monkeypatch.setattr(sqlite3, "connect", without)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", without)  # the one SQLAlchemy calls


def test_after_forget_the_sqlite_file_and_its_wal_hold_no_byte_of_the_person(
    tmp_path, sqlite_built_without_secure_delete
):
    """Deleted and updated rows linger in SQLite's pages and in the WAL unless overwritten: nudge
    zeroes freed bytes (secure_delete) and forget checkpoints the WAL away, while another process
    (a daemon, `nudge serve`) keeps the database open. Grepped in the raw bytes, not through SQL."""
    root = tmp_path / "ws"
    database = root / "nudge.db"
    config = {"store": "sqlite:///nudge.db", "email": {"connector": "outbox", "outbox": {"dir": "outbox"}}}
    write_workspace(root, [CAMPAIGN], config=config)
    nudge(root, "migrate")
    holder = subprocess.Popen(  # keeps the database open, as a running daemon does
        [sys.executable, "-c", HOLDER, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "open\n"
        _ada_history(root, tmp_path)
        before = b"".join(f.read_bytes() for f in root.glob("nudge.db*"))
        assert all(value in before for value in RAW_PERSONAL)  # the grep does see them

        nudge(root, "forget", "cust-ada-7")
        left = {
            file.name: found
            for file in sorted(root.glob("nudge.db*"))
            if (found := [v.decode() for v in RAW_PERSONAL if v in file.read_bytes() or v.lower() in file.read_bytes()])
        }
        assert left == {}, f"still on disk after forget: {left}"
    finally:
        holder.communicate("", timeout=30)


HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM customers").fetchall()
print("open", flush=True)
sys.stdin.read()
connection.close()
"""


def _ada_history(root, tmp_path) -> None:
    """Ada imported, then updated (her older row version dies), with events and a sent message."""
    people = tmp_path / "people.jsonl"
    earlier = {**ADA, "city": "Rue Morgue", "phone": "+44 20 7946 0999"}
    filler = [{**BOB, "id": f"cust-{n}", "email": f"c{n}@example.org", "city": "x" * 200} for n in range(300)]
    people.write_text("".join(json.dumps(row) + "\n" for row in [earlier, *filler]))
    nudge(root, "import", "customers", str(people))
    people.write_text(json.dumps(ADA) + "\n")
    nudge(root, "import", "customers", str(people))
    history = tmp_path / "events.jsonl"
    rows = [
        {
            "customer_id": "cust-ada-7",
            "type": "purchase",
            "occurred_at": (NOW - timedelta(days=n + 1)).isoformat(),
            "address": "Rue Morgue",
        }
        for n in range(50)
    ]
    history.write_text("".join(json.dumps(row) + "\n" for row in rows))
    nudge(root, "import", "events", str(history))
    nudge(root, "run", "--at", NOW.isoformat())


def _row_versions(conn) -> dict[str, bytes]:
    """Every row version still in each table's pages, live or dead (pageinspect), by table."""
    try:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
    except sa.exc.DBAPIError:
        pytest.skip("pageinspect is not available on this PostgreSQL server")
    found = {}
    for table in metadata.sorted_tables:
        items = conn.execute(
            sa.text(
                "SELECT t_data FROM generate_series(0, pg_relation_size(CAST(:t AS regclass)) / 8192 - 1) AS block, "
                "heap_page_items(get_raw_page(CAST(:t AS text), CAST(block AS int))) WHERE t_data IS NOT NULL"
            ),
            {"t": table.name},
        ).scalars()
        found[table.name] = b"\0".join(bytes(item) for item in items)
        for index in table.indexes | ({table.primary_key} if table.primary_key.columns else set()):
            name = (
                getattr(index, "name", None)
                or conn.execute(
                    sa.text(
                        "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"
                    ),
                    {"t": table.name},
                ).scalar()
            )
            keys = conn.execute(
                sa.text(
                    "SELECT data FROM generate_series(1, pg_relation_size(CAST(:i AS regclass)) / 8192 - 1) AS block, "
                    "bt_page_items(CAST(:i AS text), CAST(block AS int))"
                ),
                {"i": name},
            ).scalars()
            found[name] = b"\0".join(bytes.fromhex(k.replace(" ", "")) for k in keys if k)
    return found


def test_after_forget_no_row_version_in_postgresql_pages_holds_the_person(pg_store, tmp_path):
    """PostgreSQL keeps a deleted or updated row's old version in the table's pages until VACUUM:
    forget vacuums the tables it touched. Read from the pages themselves (pageinspect), dead
    versions included, not through SQL's view of live rows."""
    root = tmp_path / "ws"
    write_workspace(root, [CAMPAIGN], config={"store": pg_store.url, "email": {"connector": "outbox"}})
    _ada_history(root, tmp_path)
    with pg_store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        before = _row_versions(conn)
        assert all(value in b"".join(before.values()) for value in [*RAW_PERSONAL, b"cust-ada-7"])  # seen
        assert b"ada.lovelace@example.org" in before["ix_customers_email"]  # index entries are read too
        nudge(root, "forget", "cust-ada-7")
        left = {
            table: found
            for table, data in _row_versions(conn).items()
            if (found := [v.decode() for v in [*RAW_PERSONAL, b"cust-ada-7"] if v in data or v.lower() in data])
        }
    assert left == {}, f"row versions still in the pages after forget: {left}"


def test_forget_by_a_role_that_cannot_vacuum_erases_and_warns(pg_store, tmp_path):
    with pg_store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        role = f"clerk_{uuid.uuid4().hex[:8]}"  # roles belong to the whole server: one per test
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(sa.text(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    seed(pg_store, customers=[ADA, BOB])
    clerk = pg_store.url.replace("postgres@", f"{role}@", 1)
    root = write_workspace(tmp_path / "ws", [CAMPAIGN], config={"store": clerk}).root
    result = nudge(root, "forget", "cust-ada-7")
    assert "forgot cust-ada-7" in result.stdout
    assert "warning: could not VACUUM customers, events" in result.stderr, result.stderr
    assert "run `VACUUM customers, events" in result.stderr and "Traceback" not in result.stderr
    assert not [value for value in PERSONAL if value.lower() in everything(pg_store)]
