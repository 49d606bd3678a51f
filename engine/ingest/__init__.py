"""ingest — data in: rows from files (and later HTTP) validated and written to the store.

In: a source file or rows. Out: customers and events in the store, every bad row located.
May import: engine.store, engine.core, connectors.api, connectors.registry.
"""
