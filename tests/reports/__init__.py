"""Tests of engine/reports: the dry run, the preview page, lift and ledger views."""
