"""Python's cyclic garbage collector paused for a block of allocation-heavy bookkeeping."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off; it is switched back on afterwards, unless
    the caller had it off already.

    Planning ``init_model`` makes a few small objects per parameter (a report row, a fill,
    tuples). On a model of 10,000 layers that triggers many collections, and each of the
    older-generation ones walks every live object (all the model's modules and tensors):
    a third of the call's time. Nothing made in such a block needs the collector to be freed
    before it ends (reference counting still frees everything acyclic at once).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
