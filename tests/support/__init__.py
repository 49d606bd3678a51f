"""Test support: servers on 127.0.0.1, the pure-Python reference evaluator, seeding helpers."""
