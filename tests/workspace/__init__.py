"""Tests of engine/workspace (see docs/architecture.md)."""
