"""The result store of a sweep: one row per run in ``OUT/results.csv`` (and ``.parquet``).

- Rows are appended as chunks finish: each append rewrites ``results.csv`` (always) and
  ``results.parquet`` (when pyarrow is installed) atomically, so a reader or a crash never sees
  half a file, and a killed sweep keeps every chunk that finished.
- ``OUT/sweep.json`` holds the spec. Every row carries a ``fingerprint``: a hash of its data
  (the tensors), the options that are not swept, the model's source file and initlab's
  version. ``resume`` skips configs whose row is there with the same fingerprint, and refuses a
  folder whose rows for the same configs were made differently.
- The folder is locked (``OUT/.lock``, an advisory ``flock``) while a sweep writes it; a
  second sweep into the same folder fails at once instead of interleaving rows.
- Floats are written with ``repr`` (they read back bit for bit).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from initlab._core.files import atomic_write
from initlab.bench.sweep.spec import AXES

COLUMNS = (
    "config_id", *AXES, "init_seed", "status", "diverged_at", "initial_loss", "final_loss",
    "best_loss", "train_accuracy", "test_loss", "test_accuracy", "prior_loss", "engine",
    "members", "seconds", "fingerprint",
)  # fmt: skip
"""The columns of ``results.csv``, in order."""

_INTS = ("depth", "width", "seed", "init_seed", "diverged_at", "members")
_FLOATS = ("scale", "lr", "initial_loss", "final_loss", "best_loss", "train_accuracy",
           "test_loss", "test_accuracy", "prior_loss", "seconds")  # fmt: skip
METRICS = ("status", "diverged_at", "initial_loss", "final_loss", "best_loss",
           "train_accuracy", "test_loss", "test_accuracy")  # fmt: skip
"""The columns that hold results (the same whatever the backend or chunking)."""


def fingerprint(parts: Mapping[str, Any]) -> str:
    """16 hex digits of a hash of ``parts`` (JSON with sorted keys)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def tensor_digest(*tensors: Any) -> str:
    """A hash of tensors' dtypes, shapes and bytes."""
    h = hashlib.blake2b(digest_size=8)
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _parse(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in _INTS:
        return int(text)
    if column in _FLOATS:
        return float(text)
    if column == "scheme" and text.startswith("{"):
        return json.loads(text)
    return text


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    return buffer.getvalue()


def read_csv(path: str) -> list[dict[str, Any]]:
    """The rows of a ``results.csv`` with their types restored."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("config_id", "status", "fingerprint")
                   if c not in (reader.fieldnames or [])]  # fmt: skip
        if missing:
            raise ValueError(f"{path} is not a sweep's results.csv (no {missing[0]} column)")
        return [{c: _parse(c, row.get(c, "") or "") for c in COLUMNS} for row in reader]


def _parquet_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for row in rows:
        for c in COLUMNS:
            value = row.get(c)
            if c == "scheme" and not isinstance(value, str) and value is not None:
                value = json.dumps(value, sort_keys=True)
            if c in _FLOATS and value is not None:
                value = float(value)
            columns[c].append(value)
    types = {c: pa.int64() for c in _INTS} | {c: pa.float64() for c in _FLOATS}
    arrays = {c: pa.array(v, type=types.get(c, pa.string())) for c, v in columns.items()}
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer)
    return buffer.getvalue()


class ResultStore:
    """An output folder being written by one sweep (a context manager that holds its lock)."""

    def __init__(self, out: str | os.PathLike[str], spec: Mapping[str, Any], resume: bool = False,
                 force: bool = False) -> None:  # fmt: skip
        self.out = os.fspath(out)
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise NotADirectoryError(f"--out {self.out} exists and is not a folder")
        self.csv = os.path.join(self.out, "results.csv")
        self.parquet = os.path.join(self.out, "results.parquet")
        existing = os.path.isdir(self.out) and [
            n for n in os.listdir(self.out) if not n.startswith(".")
        ]
        if existing and not (resume or force):
            raise FileExistsError(
                f"output folder {self.out} is not empty; pass --resume to continue the sweep "
                f"saved there or --force to overwrite it"
            )
        os.makedirs(self.out, exist_ok=True)
        self._lock_handle: Any = None
        self._lock()
        self.rows: list[dict[str, Any]] = []
        if resume and os.path.exists(self.csv):
            self.rows = read_csv(self.csv)
        atomic_write(os.path.join(self.out, "sweep.json"), json.dumps(spec, indent=1, default=str))
        self.has_parquet = os.path.exists(self.parquet)

    def _lock(self) -> None:
        handle = open(os.path.join(self.out, ".lock"), "a+")  # noqa: SIM115 (held until close)
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX: no advisory lock
            pass
        except OSError:
            handle.close()
            raise FileExistsError(
                f"output folder {self.out} is being written by another sweep (locked)"
            ) from None
        self._lock_handle = handle

    def close(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done(self, fingerprints: Mapping[str, str]) -> set[str]:
        """The config ids already stored with the given fingerprint (``{config_id: fp}``);
        refuses rows for those configs made with other settings."""
        have = {r["config_id"]: r["fingerprint"] for r in self.rows}
        changed = sorted(c for c, fp in fingerprints.items() if c in have and have[c] != fp)
        if changed:
            raise ValueError(
                f"cannot resume {self.out}: {len(changed)} of its runs were made with different "
                f"data or options (fingerprint {have[changed[0]]} != {fingerprints[changed[0]]});"
                f" use a new --out folder or --force"
            )
        return {c for c in fingerprints if c in have}

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows and rewrite the files atomically."""
        self.rows.extend(dict(r) for r in rows)
        atomic_write(self.csv, rows_to_csv(self.rows))
        data = _parquet_bytes(self.rows)
        if data is not None:
            atomic_write(self.parquet, data)
            self.has_parquet = True


__all__ = ["COLUMNS", "METRICS", "ResultStore", "fingerprint", "read_csv", "rows_to_csv"]
