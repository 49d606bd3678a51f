"""Serialising work across processes through the store itself.

Planning an occurrence reads the ledger (cooldown, frequency cap) and then writes to it. Two
processes planning at once would each miss the other's rows and both contact the same customer,
so planning holds a lock that every process sharing the store respects: a session-level advisory
lock on PostgreSQL (released by the server if the process dies), an exclusive `flock` on a file
beside the SQLite database (released by the kernel if the process dies). Uncontended, either
costs a round trip or a system call.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from engine.store.db import Store


def lock_number(key: str) -> int:
    """A stable signed 64-bit number for a lock name (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(f"nudge:{key}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(store: Store, *keys: str) -> Iterator[None]:
    """Hold the named locks for the duration of the block; wait while another process holds one.
    Several are taken in one fixed order, so two processes never each hold what the other waits for."""
    if store.dialect == "postgresql":
        numbers = sorted({lock_number(key) for key in keys})
        with store.engine.connect() as conn:
            for number in numbers:
                conn.execute(sa.select(sa.func.pg_advisory_lock(number)))
            conn.commit()
            try:
                yield
            finally:
                for number in reversed(numbers):
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(number)))
                conn.commit()
        return
    database = make_url(store.url).database
    if not database or database == ":memory:":
        yield  # one process, one connection: nothing to serialise against
        return
    # One file for every key (taking it twice in one process would wait forever on itself):
    # SQLite serialises its writers anyway.
    with open(f"{database}.plan.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
