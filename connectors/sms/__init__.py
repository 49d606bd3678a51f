"""SMS connectors: the JSON-file outbox (the embedded default) and Twilio."""
