"""Pluggable edges of nudge: email, task sinks, data sources."""
