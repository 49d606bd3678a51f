"""Python's cycle collector, paused around a loop over a large result."""

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
