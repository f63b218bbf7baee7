"""Files: atomic writes and output folders."""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def prepare_out(
    out: str | os.PathLike[str], force: bool = False, resume: bool = False, create: bool = True
) -> str:
    """Create ``out``; refuse an existing non-empty folder unless ``force`` or ``resume``."""
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not (force or resume):
        raise FileExistsError(
            f"output folder {out} is not empty; pass --force to overwrite it or --resume to "
            f"continue the comparison saved there"
        )
    if create:
        os.makedirs(os.path.join(out, "models"), exist_ok=True)
    return out
