"""delivery — exactly once: plans into the ledger, the ledger out through connectors.

In: a `Workspace`, a `Store`, the configured outlets. Out: ledger rows and their coupons
(`materialize`), sent/failed/unknown outcomes (`dispatch`), crash recovery (`reconcile`),
one occurrence end to end (`occurrence`), `nudge run` (`runs`) and the daemon.
May import: engine.workspace and everything below it, connectors.api, connectors.registry.
"""
