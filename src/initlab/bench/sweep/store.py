"""The result store of a sweep: one row per run in ``OUT/results.csv`` (and ``.parquet``).

- Rows are appended as chunks finish: each append rewrites ``results.csv`` (always) and
  ``results.parquet`` (when pyarrow is installed) atomically, so a reader or a crash never sees
  half a file, and a killed sweep keeps every chunk that finished.
- ``OUT/sweep.json`` holds the spec that started the folder. Every row carries a
  ``fingerprint``: a hash of its data (the tensors), the options that are not swept, the
  model's source file and initlab's version.
- **Resume merges, never drops.** ``resume`` keeps every saved row (also of configs the new
  spec does not list) and runs only the configs missing. It is refused, before anything is
  written (``sweep.json`` included), when the saved settings differ
  (:meth:`~.spec.SweepSpec.settings`: iterations, dtype, sweep seed, model, ...; named as
  ``iterations: 5 -> 7``), when saved rows of a data set in the new spec have another
  fingerprint, or when ``results.csv`` is damaged (:func:`read_csv`).
- The caller holds the folder's lock (:func:`initlab._core.locks.folder_lock`, the same lock
  as ``compare``) while the store writes.
- Floats are written with ``repr`` (they read back bit for bit).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from initlab._core.files import atomic_write, check_outputs, clear_outputs, prepare_out
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


_STATUSES = ("finished", "diverged")


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a ``results.csv`` with their types restored. A damaged file is a one-line
    ``ValueError`` naming the file and line: a row without a ``config_id`` or
    ``fingerprint``, a config twice, a status other than finished or diverged, a finished run
    whose ``final_loss`` is not a finite number, a cell that is not its column's type."""
    path = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("config_id", "status", "fingerprint")
                       if c not in (reader.fieldnames or [])]  # fmt: skip
            if missing:
                raise ValueError(f"{path} is not a sweep's results.csv (no {missing[0]} column)")
            rows: list[dict[str, Any]] = []
            first: dict[str, int] = {}
            for raw in reader:
                rows.append(_row(path, reader.line_num, raw, first))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}); not a sweep's "
                         f"results.csv") from None  # fmt: skip
    except csv.Error as error:
        raise ValueError(f"{path} is not a valid CSV file ({error})") from None
    return rows


def _row(path: str, line: int, raw: Mapping[str, Any], first: dict[str, int]) -> dict[str, Any]:
    """One checked row of ``results.csv`` (``first``: config id -> line, updated)."""
    where = f"{path}, line {line}"
    row = {}
    for column in COLUMNS:
        text = raw.get(column) or ""
        try:
            row[column] = _parse(column, text)
        except ValueError:
            kind = "an integer" if column in _INTS else "a number" if column in _FLOATS else "JSON"
            raise ValueError(f"{where}: {column} must be {kind}; got {text!r}") from None
    cid = row["config_id"]
    if not cid:
        raise ValueError(f"{where}: the row has no config_id; the file was damaged or edited")
    if cid in first:
        raise ValueError(
            f"{where}: config {cid} is already on line {first[cid]}; the file was damaged or edited"
        )
    first[cid] = line
    if not row["fingerprint"]:
        raise ValueError(f"{where}: config {cid} has no fingerprint")
    if row["status"] not in _STATUSES:
        raise ValueError(f"{where}: status must be finished or diverged; got {row['status']!r}")
    loss = row["final_loss"]
    if row["status"] == "finished" and (loss is None or not math.isfinite(loss)):
        raise ValueError(
            f"{where}: config {cid} is marked finished but its final_loss is "
            f"{'missing' if loss is None else loss}; a finished run has a finite loss"
        )
    return row


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


def settings_changes(saved: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The settings that differ between a saved ``sweep.json`` and a new spec's
    :meth:`~.spec.SweepSpec.settings`, as ``name: old -> new`` (a setting an older file lacks
    takes the default)."""
    from initlab.bench.sweep.spec import SweepSpec

    defaults = SweepSpec().settings()

    def plain(value: Any) -> Any:
        return json.loads(json.dumps(value, sort_keys=True, default=str))

    changes = []
    for key in settings:
        old, new = plain(saved.get(key, defaults.get(key))), plain(settings[key])
        if old != new:
            changes.append(f"{key}: {old!r} -> {new!r}")
    return changes


class ResultStore:
    """The result files of a sweep's output folder ``out``. Create it while holding the
    folder's lock: the constructor checks everything (a non-empty folder without ``resume``
    or ``force``, and for ``resume`` the saved rows, settings and fingerprints; see the module
    docstring) and only then writes: with ``force`` it removes the previous experiment's
    files, then it writes ``sweep.json`` (kept as it is on a resume).

    ``spec``: the spec as plain JSON (:meth:`~.spec.SweepSpec.to_dict`); ``settings``: its
    :meth:`~.spec.SweepSpec.settings` (default: taken from ``spec``); ``data_fingerprints``:
    the fingerprint of each data set of the new spec by name (saved rows of those data sets
    must have it)."""

    def __init__(self, out: str | os.PathLike[str], spec: Mapping[str, Any], resume: bool = False,
                 force: bool = False, settings: Mapping[str, Any] | None = None,
                 data_fingerprints: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.out = prepare_out(out, force=force, resume=resume, create=False)
        self.csv = os.path.join(self.out, "results.csv")
        self.parquet = os.path.join(self.out, "results.parquet")
        spec_path = os.path.join(self.out, "sweep.json")
        if settings is None:
            settings = {k: v for k, v in spec.items()
                        if k not in ("axes", "search", "samples", "chunk")}  # fmt: skip
        self.rows: list[dict[str, Any]] = []
        resuming = resume and os.path.exists(self.csv)
        if resume and not resuming and os.path.exists(os.path.join(self.out, "results.json")):
            raise ValueError(
                f"cannot resume {self.out}: it holds a comparison (results.json), not a sweep; "
                f"use another --out or --force"
            )
        if resuming:
            self.rows = read_csv(self.csv)
        saved = _read_json(spec_path) if resume and os.path.exists(spec_path) else None
        if saved is not None:
            changes = settings_changes(saved, settings)
            if changes:
                raise ValueError(
                    f"cannot resume {self.out}: it was made with different settings "
                    f"({'; '.join(changes)}); use a new --out folder or --force"
                )
        self._check_fingerprints(data_fingerprints or {})
        check_outputs(self.out)
        if force and not resuming:
            clear_outputs(self.out)
        os.makedirs(self.out, exist_ok=True)
        if saved is None:
            atomic_write(spec_path, json.dumps(spec, indent=1, default=str))
        self.has_parquet = os.path.exists(self.parquet)

    def _check_fingerprints(self, by_data: Mapping[str, str]) -> None:
        for row in self.rows:
            want = by_data.get(row["data"])
            if want is not None and row["fingerprint"] != want:
                raise ValueError(
                    f"cannot resume {self.out}: its runs on data {row['data']!r} were made with "
                    f"other data, options or initlab version (fingerprint {row['fingerprint']}"
                    f" != {want}); use a new --out folder or --force"
                )

    def done(self, config_ids: Iterable[str]) -> set[str]:
        """The ones of ``config_ids`` already stored (their fingerprints were checked when the
        store was opened)."""
        have = {r["config_id"] for r in self.rows}
        return {c for c in config_ids if c in have}

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows and rewrite the files atomically."""
        self.rows.extend(dict(r) for r in rows)
        atomic_write(self.csv, rows_to_csv(self.rows))
        data = _parquet_bytes(self.rows)
        if data is not None:
            atomic_write(self.parquet, data)
            self.has_parquet = True


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the folder was damaged or not "
                         f"written by initlab") from None  # fmt: skip
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object (a sweep spec); got {type(data).__name__}")
    return data


__all__ = ["COLUMNS", "METRICS", "ResultStore", "fingerprint", "read_csv", "rows_to_csv",
           "settings_changes"]  # fmt: skip
