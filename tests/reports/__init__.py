"""Tests of engine/reports (see docs/architecture.md)."""
