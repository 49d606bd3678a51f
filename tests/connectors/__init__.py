"""Tests of connectors/: the contracts, each built-in connector against a real local peer."""
