"""The customer store: tables, connections and migrations."""

from .db import Store, dialect_insert, open_store

__all__ = ["Store", "dialect_insert", "open_store"]
