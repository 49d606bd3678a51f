"""Tests of engine/web (see docs/architecture.md)."""
