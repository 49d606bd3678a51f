"""Tests of engine/store (see docs/architecture.md)."""
