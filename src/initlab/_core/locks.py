"""Exclusive claims on output folders: one initlab process writes a folder at a time.

:func:`folder_lock` creates ``.initlab.lock`` in the folder, holding the owner's pid, host and
start time, with ``os.link`` (atomic: exactly one of two racing processes succeeds, and the
file is complete when it appears). It is removed on exit, also on an exception or Ctrl-C. A
lock left by a process that no longer runs on this host is stale and taken over; any other
existing lock is refused with a message naming its owner. The same process may enter the lock
of a folder it already holds (the CLI holds it over training and the report).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

LOCK_NAME = ".initlab.lock"
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def read_lock(folder: str | os.PathLike[str]) -> dict | None:
    """The owner record of ``folder``'s lock (``{}`` if unreadable), or ``None`` if unlocked."""
    path = os.path.join(os.fspath(folder), LOCK_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _try_create(folder: str, record: dict) -> bool:
    path = os.path.join(folder, LOCK_NAME)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".initlab-lock-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _stale(owner: dict) -> bool:
    """A lock is stale when its process is gone (same host) or its file is unreadable (the
    link makes a complete file appear at once, so an unreadable one is damaged)."""
    if not owner:
        return True
    pid, host = owner.get("pid"), owner.get("host")
    return host == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[str]:
    """Hold the exclusive lock of ``folder`` (created if needed) inside the block."""
    folder = os.path.abspath(os.fspath(folder))
    with _HELD_LOCK:
        if folder in _HELD:
            _HELD[folder] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield folder
        finally:
            with _HELD_LOCK:
                _HELD[folder] -= 1
        return
    created = not os.path.exists(folder)
    os.makedirs(folder, exist_ok=True)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):
        if _try_create(folder, record):
            break
        owner = read_lock(folder)
        if owner is None:
            continue  # released meanwhile
        if _stale(owner):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, LOCK_NAME))
            continue
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
        raise FileExistsError(
            f"{folder} is in use by another initlab process (pid {owner.get('pid')} on "
            f"{owner.get('host')}, since {since}); wait for it to finish, or delete "
            f"{os.path.join(folder, LOCK_NAME)} if that process is gone"
        )
    else:  # pragma: no cover - three races lost in a row
        raise FileExistsError(f"could not lock {folder}: another process keeps claiming it")
    with _HELD_LOCK:
        _HELD[folder] = 1
    try:
        yield folder
    finally:
        with _HELD_LOCK:
            del _HELD[folder]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, LOCK_NAME))
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
