"""Files: atomic writes, output folders, and what initlab writes into them.

:func:`atomic_write` writes a temporary file in the target's folder, ``fsync``s it, gives it
the mode a plain ``open()`` would (``0o666`` less the umask), renames it over the target and
``fsync``s the folder: after a crash or power loss the target holds the old content or the new,
never a mix. A full disk (or any other ``OSError``) leaves the old file in place and raises an
error that names the file.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import tempfile
import threading

_UMASK_LOCK = threading.Lock()

# Every file initlab's commands write into an output folder (top level), and the model files
# under ``models/``. ``--force`` removes these (and only these) before a new experiment.
OUTPUT_FILES = (
    "results.json",
    "history.csv",
    "monitor.json",
    "report.html",
    "loss.png",
    "gradient_norms.png",
    "decision_boundaries.png",
    "monitor.png",
    "summary.png",
    ".tmp-*",
)
MODEL_FILES = "models/run-*.pt"


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    path = os.fspath(path)
    if not path or os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path!r}: it is a folder, not a file name")
    folder = os.path.dirname(os.path.abspath(path))
    payload = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    except OSError as error:
        raise _named(error, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise _named(error, path) from None
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse directory fsync
        pass
    finally:
        os.close(fd)


def _named(error: OSError, path: str) -> OSError:
    """The same kind of ``OSError``, with a message that names ``path`` and what to do."""
    if error.errno == errno.ENOSPC:
        reason = "no space left on device (earlier complete files are kept)"
    elif error.errno == errno.EDQUOT:
        reason = "disk quota exceeded (earlier complete files are kept)"
    else:
        reason = error.strerror or str(error)
    out = type(error)(error.errno, f"could not write {path}: {reason}")
    return out


def prepare_out(
    out: str | os.PathLike[str], force: bool = False, resume: bool = False, create: bool = True
) -> str:
    """Create ``out``; refuse an existing non-empty folder unless ``force`` or ``resume``."""
    out = os.fspath(out)
    if not out.strip():
        raise ValueError("--out must not be empty; give a folder name")
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    if os.path.isdir(out) and _visible(out) and not (force or resume):
        raise FileExistsError(
            f"output folder {out} is not empty; pass --force to overwrite it or --resume to "
            f"continue the comparison saved there"
        )
    if create:
        os.makedirs(os.path.join(out, "models"), exist_ok=True)
    return out


def _visible(out: str) -> list[str]:
    """The folder's entries other than initlab's own lock and an empty ``models/``."""
    names = [n for n in os.listdir(out) if not n.startswith(".initlab")]
    models = os.path.join(out, "models")
    if "models" in names and os.path.isdir(models) and not os.listdir(models):
        names.remove("models")
    return names


def clear_outputs(out: str | os.PathLike[str]) -> list[str]:
    """Remove initlab's outputs from folder ``out`` (:data:`OUTPUT_FILES` at the top level and
    ``models/run-*.pt``), so a ``--force``d experiment leaves no file of the previous one;
    other files are kept. Returns the paths removed."""
    out = os.fspath(out)
    removed = []
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        path = os.path.join(out, name)
        if os.path.isfile(path) and any(fnmatch.fnmatch(name, p) for p in OUTPUT_FILES):
            os.unlink(path)
            removed.append(path)
    models = os.path.join(out, "models")
    for name in sorted(os.listdir(models)) if os.path.isdir(models) else []:
        path = os.path.join(models, name)
        if os.path.isfile(path) and fnmatch.fnmatch(f"models/{name}", MODEL_FILES):
            os.unlink(path)
            removed.append(path)
    return removed


__all__ = ["atomic_write", "clear_outputs", "current_umask", "prepare_out"]
