"""Tests of engine/ingest (see docs/architecture.md)."""
