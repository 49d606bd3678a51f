"""store — tables, connections, migrations, dialect helpers.

In: a store URL. Out: a `Store` (engine + schema at head), SQLAlchemy Core tables, typed JSON
reads that mean the same on SQLite and PostgreSQL (`sqljson`).
May import: engine.core.
"""

from engine.store.db import Store, dialect_insert, open_store

__all__ = ["Store", "dialect_insert", "open_store"]
