"""Tests of engine/cli (see docs/architecture.md)."""
