"""Exclusive claims on output folders: one initlab process writes a folder at a time.

:func:`folder_lock` is the one lock of every command that writes an experiment folder
(``compare``, ``sweep``, their reports). It holds an advisory ``fcntl.flock`` on
``FOLDER/.initlab.lock`` through an open file descriptor for the whole block:

- **No stale locks.** The kernel releases the lock when the holder exits, however it exits
  (``SIGKILL`` and power loss included), so there is nothing to detect or take over: the next
  process simply gets it. The lock file's content (the holder's pid, host and start time) only
  serves the refusal message; whatever it says, only the ``flock`` decides.
- **No races.** ``flock`` is atomic: of any number of processes trying at once, exactly one
  holds it. The holder deletes the lock file before it lets go, and a process that got the
  lock of a file that was deleted meanwhile (it opened it just before) tries again on the new
  one, so two holders can never lock two different files of the same name.
- The lock file is left behind only when its holder was killed; it is harmless (a later run
  locks and removes it), and ``--force`` and the non-empty check ignore it.
- A second process is refused at once (no waiting) with a ``FileExistsError`` naming the
  holder. The same process may enter the lock of a folder it already holds (the CLI holds it
  over training and the report).
- A lock file that is a symbolic link or anything but a regular file is refused, never
  followed.

On a platform without ``fcntl`` (Windows) folders are not locked.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator

LOCK_NAME = ".initlab.lock"
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def read_lock(folder: str | os.PathLike[str]) -> dict | None:
    """The owner record in ``folder``'s lock file (``{}`` if unreadable), or ``None`` when
    there is no lock file. Only informative: a file left by a killed process is not a lock."""
    path = os.path.join(os.fspath(folder), LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        return _record(fd)
    finally:
        os.close(fd)


def _record(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _open(path: str) -> int:
    """An open descriptor of the lock file at ``path`` (created if missing), which must be a
    regular file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise FileExistsError(
                f"{path} is a symbolic link; initlab's folder lock must be a regular file "
                f"(remove the link)"
            ) from None
        raise type(error)(error.errno, f"could not lock {path}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileExistsError(
            f"{path} is not a regular file; initlab's folder lock must be one (remove it)"
        )
    return fd


def _refusal(folder: str, owner: dict) -> FileExistsError:
    who = f"pid {owner['pid']} on {owner.get('host', '?')}" if "pid" in owner else "pid unknown"
    started = owner.get("started")
    if isinstance(started, int | float):
        who += ", since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    return FileExistsError(
        f"{folder} is in use by another initlab process ({who}); wait for it to finish or "
        f"choose another --out"
    )


def _acquire(folder: str) -> int:
    """Lock ``folder`` (see the module docstring); returns the descriptor that holds it."""
    import fcntl

    path = os.path.join(folder, LOCK_NAME)
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            owner = _record(fd)
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _refusal(folder, owner) from None
            raise type(error)(error.errno, f"could not lock {path}: {error.strerror}") from None
        # The holder before us deletes the file before letting go: if the name no longer
        # leads to the file we locked, lock the one it leads to now.
        held = os.fstat(fd)
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            return fd
        os.close(fd)


def _release(folder: str, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, LOCK_NAME))  # while still held: see _acquire
    os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[str]:
    """Hold the exclusive lock of ``folder`` (created if needed) inside the block; a folder
    this call created is removed again if nothing was written into it (bad input)."""
    folder = os.path.abspath(os.fspath(folder))
    created = not os.path.lexists(folder)
    os.makedirs(folder, exist_ok=True)
    key = os.path.realpath(folder)
    with _HELD_LOCK:
        nested = key in _HELD
        if nested:
            _HELD[key] += 1
    if nested:
        try:
            yield folder
        finally:
            with _HELD_LOCK:
                _HELD[key] -= 1
        return
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - not POSIX: no advisory locks
        fd = None
    else:
        try:
            fd = _acquire(folder)
        except BaseException:
            if created:
                _remove_if_empty(folder)
            raise
    with _HELD_LOCK:
        _HELD[key] = 1
    try:
        yield folder
    finally:
        with _HELD_LOCK:
            del _HELD[key]
        if fd is not None:
            _release(folder, fd)
        if created:
            _remove_if_empty(folder)


def _remove_if_empty(folder: str) -> None:
    """Remove a folder this lock created when nothing was written into it (bad input)."""
    with contextlib.suppress(OSError):
        models = os.path.join(folder, "models")
        if os.path.isdir(models) and not os.listdir(models):
            os.rmdir(models)
        os.rmdir(folder)  # fails (and is left) unless empty


__all__ = ["LOCK_NAME", "folder_lock", "read_lock"]
