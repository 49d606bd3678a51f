"""messages — what: a campaign's actions rendered for one customer.

In: a campaign, customers from the store, coupons. Out: the template context, rendered emails
(HTML, text, headers, unsubscribe link) and task texts (`actions`), static template checks.
May import: engine.audience, engine.rules, engine.store, engine.core, connectors.api.
"""
