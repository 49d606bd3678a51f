"""reports — what would happen and what happened, read-only.

In: a `Workspace` and a store connection. Out: the dry run (plans + rendered samples), lift
against the holdout, operator views of the ledger, metric summaries.
May import: engine.workspace and everything below it (not engine.delivery).
"""
