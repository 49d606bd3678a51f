"""Tests of engine/delivery (see docs/architecture.md)."""
