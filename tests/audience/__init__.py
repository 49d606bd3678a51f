"""Tests of engine/audience (see docs/architecture.md)."""
