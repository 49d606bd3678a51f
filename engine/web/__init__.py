"""web — `nudge serve`: unsubscribe links and the provider's event webhook over HTTP.

In: HTTP requests. Out: suppressions and ledger updates in the store.
May import: engine.delivery, engine.ingest, engine.messages and below.
"""
