"""Tests of engine/rules: config and rule files as a user writes them."""
