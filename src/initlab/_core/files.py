"""Files: the one writer, output folders, and what initlab writes into them.

:func:`atomic_write` is how initlab writes every file. It writes a temporary file in the
target's folder, ``fsync``s it, gives it the mode a plain ``open()`` would (``0o666`` less the
umask), renames it over the target and ``fsync``s the folder: after a crash or power loss the
target holds the old content or the new, never a mix. A full disk (or any other ``OSError``)
leaves the old file in place and raises an error that names the file.

It replaces only a regular file: a symbolic link, FIFO, device node, socket or folder at the
target is refused with a one-line error naming the path (:func:`check_target`), so a link's
target is never left stale while the command says it wrote the link, and ``/dev/null`` stays a
device even for root.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
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
    "results.csv",
    "results.parquet",
    "sweep.json",
    "phase.png",
    "multiplier.png",
    "curve-*.png",
    ".tmp-*",
)
MODEL_FILES = "models/run-*.pt"


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_target(path: str | os.PathLike[str]) -> str:
    """``path`` as a string when :func:`atomic_write` may write it: it does not exist, or is a
    regular file (not followed if a link). Anything else is refused with a one-line
    ``OSError`` naming the path: ``IsADirectoryError`` for a folder, ``FileExistsError`` for a
    symbolic link, FIFO, device node or socket."""
    path = os.fspath(path)
    if not path:
        raise IsADirectoryError("cannot write '': it is a folder, not a file name")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as error:
        raise _named(error, path) from None
    if stat.S_ISREG(mode):
        return path
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"cannot write {path!r}: it is a folder, not a file name")
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise FileExistsError(
        f"refusing to write {path}: it is {kind}, and initlab replaces only regular files "
        f"(remove it or choose another name)"
    )


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically; refuse a target that is not a regular file (see
    the module docstring)."""
    path = check_target(path)
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
            f"continue the experiment saved there"
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


def _outputs(out: str) -> list[str]:
    """The paths in folder ``out`` named like initlab's outputs (:data:`OUTPUT_FILES` at the
    top level, ``models/run-*.pt``), whatever kind of file they are."""
    found = []
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        if any(fnmatch.fnmatch(name, p) for p in OUTPUT_FILES):
            found.append(os.path.join(out, name))
    models = os.path.join(out, "models")
    for name in sorted(os.listdir(models)) if os.path.isdir(models) else []:
        if fnmatch.fnmatch(f"models/{name}", MODEL_FILES):
            found.append(os.path.join(models, name))
    return found


def check_outputs(out: str | os.PathLike[str]) -> None:
    """Refuse folder ``out`` when one of initlab's output names in it is not a regular file
    (:func:`check_target`): a command calls this before it trains, so it stops before
    writing anything rather than after the work."""
    for path in _outputs(os.fspath(out)):
        check_target(path)


def clear_outputs(out: str | os.PathLike[str]) -> list[str]:
    """Remove initlab's outputs from folder ``out`` (:data:`OUTPUT_FILES` at the top level and
    ``models/run-*.pt``: a comparison's or a sweep's files, plots and report), so a
    ``--force``d experiment leaves no file of the previous one; other files are kept. Only
    regular files are removed (see :func:`check_outputs`). Returns the paths removed."""
    removed = []
    for path in _outputs(os.fspath(out)):
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
            removed.append(path)
    return removed


__all__ = ["atomic_write", "check_outputs", "check_target", "clear_outputs", "current_umask",
           "prepare_out"]  # fmt: skip
