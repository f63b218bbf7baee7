"""Intra-op thread count for a block of code (tiny ops run faster on one thread)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def few_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch intra-op threads inside the block (``None``: leave as is); the
    previous count is restored on exit."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
