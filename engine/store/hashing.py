"""The one-way hash an address is kept as once it must not be readable (a forgotten customer's,
a suppression's), in Python and in SQL. Apart from privacy so that a dry run's consent check and
every SQLite connection get it without loading export and erasure."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa


def address_hash(address: str) -> str:
    return "sha256:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()


def address_hash_sql(address: Any, dialect: str) -> Any:
    """address_hash in SQL: PostgreSQL's sha256, or the function every SQLite connection gets."""
    if dialect == "postgresql":
        digest = sa.func.encode(sa.func.sha256(sa.func.convert_to(sa.func.lower(sa.func.trim(address)), "UTF8")), "hex")
        return sa.literal("sha256:") + digest
    return sa.func.nudge_address_hash(address)
