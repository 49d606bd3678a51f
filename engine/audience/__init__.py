"""audience — who: conditions compiled to SQL and evaluated by the database at an instant `at`.

In: condition models, `Config`, a store connection. Out: SQL expressions (`compiler`), the
planner's outcome per customer in SPEC order (`planner`), per-condition values (`explain`),
computed customer metrics and lifetime-value fits (`metrics`, `clv`).
May import: engine.rules, engine.store, engine.core.
"""
