"""Python's cycle collector, paused around a loop over a large result and while a command loads."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a plan streams its audience. The loop makes no reference
    cycles (refcounting frees all it allocates), but each batch of rows it holds survives enough
    young collections to be promoted, which sets off full collections over the whole heap (the
    loaded rule models, SQLAlchemy's tables): at 200k customers they were a fifth of the plan's
    CPU. Restored as it was, whatever happens."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def loading() -> Iterator[None]:
    """Python's cycle collector off while a command loads what it needs (its modules, the rule
    models: tens of thousands of objects that live as long as the command, none of them garbage),
    then all of it moved straight to the oldest generation (freeze, unfreeze). Collected as it
    loads, it would only be promoted there step by step, ending in a full collection over the whole
    heap: ~40 ms of a dry run's start-up. A later full collection still examines it as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()
