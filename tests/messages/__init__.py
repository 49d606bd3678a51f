"""Tests of engine/messages (see docs/architecture.md)."""
