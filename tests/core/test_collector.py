"""The cycle collector is paused only around the loop, and comes back as it was, error or not."""

from __future__ import annotations

import gc

import pytest

from engine.core.collector import collector_paused


def test_the_collector_is_off_inside_and_back_on_after_even_after_an_error():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a store outage mid-plan")
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
