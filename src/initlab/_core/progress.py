"""Progress bars through one helper the caller can silence (library code never prints)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, description: str) -> Iterator[Callable[..., None]]:
    """A ``rich`` progress bar (or a silent stand-in when ``enabled`` is false); yields
    ``advance(n=1)``. ``rich`` is imported only when a bar is shown."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:  # fmt: skip
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
