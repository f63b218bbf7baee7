"""``--out`` of the commands that write an experiment folder: the user's (never empty), or a
new time-stamped folder under ``runs/``."""

from __future__ import annotations

import datetime
import os

from initlab._core.validation import check_nonempty


def out_folder(value: str | None, kind: str) -> str:
    """``value`` when given (an empty one is an error, not the default), else
    ``runs/KIND-YYYYmmdd-HHMMSS`` with ``-2``, ``-3``, ... appended until the name is new."""
    if value is not None:
        return check_nonempty("--out", value)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{kind}-{stamp}")
    path, k = base, 1
    while os.path.exists(path):
        k += 1
        path = f"{base}-{k}"
    return path
