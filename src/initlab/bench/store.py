"""The results folder of a comparison: what is written, how it is read back, and when a saved
comparison may be resumed.

Layout of ``out/``: ``results.json`` (settings, data fingerprint, runs with histories),
``history.csv``, ``monitor.json`` (monitored comparisons), ``models/run-<id>.pt``.

- **Run identity.** Each run's weights live in ``models/run-<id>.pt``, where ``<id>`` is
  :func:`run_id` of its scheme and seed (never its position), and ``results.json`` records the
  id and the SHA-256 of that file. A model file whose hash does not match (written by a later
  save that was interrupted before ``results.json``) is not attached to the run: on resume the
  run trains again. So the model files and ``results.json`` may be written in either order.
- **Resume merges, never drops.** A resume reuses the saved runs it asks for and keeps the
  others as saved: ``results.json``, ``history.csv`` and ``monitor.json`` then list every run
  of the folder, each model file with its entry. Settings and data must match
  (:func:`settings_changes`, :func:`data_changes`), checked before anything is written; a
  ``results.json`` with a run twice is refused.
- **No unpickling.** Model files load with ``torch.load(weights_only=True)``; their keys and
  shapes must be exactly those of the saved architecture (checked on a meta-device model, so a
  crafted ``layer_dims`` allocates nothing) before any weight is copied.
- **Errors** about a damaged or foreign folder are one-line ``ValueError``s naming the file (and
  the line and column of a JSON error).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from initlab._core.files import atomic_write
from initlab._core.fingerprint import file_digest
from initlab._core.memory import check_fits
from initlab.bench.nets import mlp
from initlab.bench.options import RunOptions
from initlab.bench.results import History, Run

_STATUSES = ("finished", "diverged")
# Settings that may differ between a saved comparison and its resumption.
_GROWABLE = ("schemes", "seeds", "data_fingerprint", "group_size")


def run_id(scheme: str, seed: int | None) -> str:
    """A stable file-name-safe id of the run ``(scheme, seed)``: 16 hex digits of a SHA-256."""
    return hashlib.sha256(f"{scheme}\0{seed}".encode()).hexdigest()[:16]


def model_path(out: str, rid: str) -> str:
    return os.path.join(out, "models", f"run-{rid}.pt")


# ---------------------------------------------------------------------------- reading
def read_json(path: str) -> Any:
    """Parse JSON file ``path``; a damaged file is a ``ValueError`` naming it and the position."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            f"the folder was damaged or not written by initlab"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {error.start}); not an initlab file"
        ) from None


def read_results(out: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(config, run entries)`` of ``out/results.json``, checked for shape and types."""
    path = os.path.join(out, "results.json")
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("runs", []), list):
        raise ValueError(
            f"{path}: expected an object with 'config' and a list of 'runs'; got "
            f"{type(data).__name__}"
        )
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{path}: 'config' must be an object; got {type(config).__name__}")
    runs = data.get("runs", [])
    first: dict[tuple[str, Any], int] = {}
    for k, entry in enumerate(runs):
        _check_entry(path, k, entry)
        key = (entry["scheme"], entry.get("seed"))
        if key in first:
            raise ValueError(
                f"{path}: run {k} repeats scheme {key[0]!r} seed {key[1]} (run {first[key]}); "
                f"the file was damaged or edited"
            )
        first[key] = k
    return config, runs


def _check_entry(path: str, k: int, entry: Any) -> None:
    where = f"{path}: run {k}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object; got {type(entry).__name__}")
    if not isinstance(entry.get("scheme"), str) or not entry["scheme"]:
        raise ValueError(
            f"{where}: 'scheme' must be a non-empty string; got {entry.get('scheme')!r}"
        )
    seed = entry.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"{where}: 'seed' must be an integer; got {seed!r}")
    if entry.get("status") not in _STATUSES:
        raise ValueError(
            f"{where}: 'status' must be finished or diverged; got {entry.get('status')!r}"
        )
    for key in ("iterations", "diverged_at"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{where}: {key!r} must be an integer; got {value!r}")
    for key in ("final_loss", "train_accuracy", "test_accuracy", "seconds"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{where}: {key!r} must be a number; got {value!r}")
    history = entry.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(history.get(k, []), list) for k in ("iteration", "loss", "train_accuracy")
    ):
        raise ValueError(f"{where}: 'history' must be an object of lists")
    if not isinstance(entry.get("config", {}), dict):
        raise ValueError(f"{where}: 'config' must be an object")


def run_from_entry(entry: Mapping[str, Any]) -> Run:
    """A :class:`Run` (without its model) from a checked ``results.json`` entry."""
    h = entry.get("history") or {}
    history = History(list(h.get("iteration", [])), list(h.get("loss", [])),
                      list(h.get("train_accuracy", [])), dict(h.get("weight_norm", {})),
                      dict(h.get("grad_norm", {})))  # fmt: skip
    keys = ("scheme", "seed", "status", "iterations", "final_loss", "train_accuracy",
            "test_accuracy", "seconds", "diverged_at", "diverged_layer")  # fmt: skip
    run = Run(history=history, config=dict(entry.get("config") or {}),
              **{k: entry.get(k) for k in keys})  # type: ignore[arg-type]  # fmt: skip
    if run.seconds is None:
        run.seconds = 0.0
    return run


def architecture(config: Mapping[str, Any], where: str) -> tuple[list[int], Any, str, float]:
    """``(layer_dims, activation, output, dropout)`` of a saved config, checked, and refused
    when the nets would not fit in memory."""
    dims = config.get("layer_dims")
    if (
        not isinstance(dims, list)
        or len(dims) < 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)
    ):
        raise ValueError(f"{where}: 'layer_dims' must be a list of at least 2 positive integers")
    params = sum((a + 1) * b for a, b in itertools.pairwise(dims))
    check_fits(params * 8, f"a model with layer_dims {dims} from {where}")
    return (
        dims,
        config.get("activation", "relu"),
        config.get("output", "sigmoid"),
        float(config.get("dropout") or 0.0),
    )


def load_model(path: str, config: Mapping[str, Any], where: str) -> nn.Module:
    """The model saved at ``path`` for ``config``'s architecture; a damaged, foreign or crafted
    file is a one-line ``ValueError`` (never unpickled: ``weights_only=True``)."""
    dims, activation, output, dropout = architecture(config, where)
    with torch.device("meta"):
        expected = {
            k: tuple(v.shape)
            for k, v in mlp(dims, activation, output, dropout).state_dict().items()
        }
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise ValueError(
            f"{path} is not a model file initlab saved ({type(error).__name__}); delete it (the "
            f"run trains again on --resume) or use --force"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors; not an initlab model file")
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        shapes = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        detail = "; ".join(
            part for part in (
                f"missing {', '.join(missing[:3])}" if missing else "",
                f"unexpected {', '.join(extra[:3])}" if extra else "",
                f"wrong shape for {', '.join(shapes[:3])}" if shapes else "",
            ) if part
        )  # fmt: skip
        raise ValueError(f"{path} does not match layer_dims {dims} ({detail})")
    dtypes = {v.dtype for v in state.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (torch.float32, torch.float64):
        raise ValueError(
            f"{path}: weights must be float32 or float64; got {sorted(map(str, dtypes))}"
        )
    model = mlp(dims, activation, output, dropout).to(next(iter(dtypes)))
    model.load_state_dict(state)
    return model


def attach_models(out: str, config: Mapping[str, Any], entries: list[dict[str, Any]],
                  runs: list[Run], strict: bool) -> list[bool]:  # fmt: skip
    """Load each run's model where its file is present and intact; returns, per run, whether
    it has its model. ``strict``: a file that exists but cannot be trusted is an error (else it
    is skipped). Old folders (no ``run_id``) use ``models/run-<position>.pt``."""
    have = []
    for k, (entry, run) in enumerate(zip(entries, runs, strict=True)):
        rid = entry.get("run_id")
        path = model_path(out, str(rid)) if isinstance(rid, str) else model_path(out, str(k))
        if not os.path.exists(path) or not config.get("layer_dims"):
            have.append(False)
            continue
        digest = entry.get("model_sha256")
        if isinstance(rid, str) and digest != file_digest(path):
            have.append(False)  # a newer save of this run, or another write interrupted
            continue
        try:
            run.model = load_model(path, config, os.path.join(out, "results.json"))
        except ValueError:
            if strict:
                raise
            have.append(False)
            continue
        have.append(True)
    return have


# ---------------------------------------------------------------------------- writing
def write_models(out: str, runs: list[Run], written: dict[str, str]) -> dict[str, str]:
    """Write ``models/run-<id>.pt`` for each run with a model not yet in ``written``
    (id -> SHA-256, updated and returned)."""
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    for run in runs:
        if run.model is None:
            continue
        rid = run_id(run.scheme, run.seed)
        if rid in written and os.path.exists(model_path(out, rid)):
            continue
        buffer = io.BytesIO()
        torch.save(run.model.state_dict(), buffer)
        payload = buffer.getvalue()
        atomic_write(model_path(out, rid), payload)
        written[rid] = hashlib.sha256(payload).hexdigest()
    return written


def results_entries(runs: list[Run], written: Mapping[str, str]) -> list[dict[str, Any]]:
    """``results.json`` run entries: each run's dict with its id and model hash."""
    entries = []
    for run in runs:
        entry = run.to_dict(history=True)
        rid = run_id(run.scheme, run.seed)
        entry["run_id"] = rid
        if rid in written:
            entry["model_sha256"] = written[rid]
        entries.append(entry)
    return entries


# ---------------------------------------------------------------------------- resuming
def settings_changes(previous: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The settings (other than schemes, seeds and the data) that differ, as
    ``name: old -> new``. Run options compare through :class:`RunOptions` (a field an older
    file lacks takes its default)."""
    fields = set(RunOptions.field_names())
    try:
        old_opts = RunOptions.from_dict(previous).to_dict()
    except (TypeError, ValueError) as error:
        return [f"run options ({error})"]
    new_opts = RunOptions.from_dict(config).to_dict()
    changes = [f"{k}: {old_opts[k]!r} -> {new_opts[k]!r}" for k in sorted(fields)
               if old_opts[k] != new_opts[k]]  # fmt: skip
    for key in sorted(config):
        if key in fields or key in _GROWABLE:
            continue
        if previous.get(key) != config[key]:
            changes.append(f"{key}: {previous.get(key)!r} -> {config[key]!r}")
    return changes


def data_changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """What differs between two data fingerprints (:meth:`Dataset.fingerprint`)."""
    if not isinstance(previous, Mapping):
        return []  # saved before fingerprints existed: the settings check is all we have
    changes = []
    for key in ("n_train", "n_test", "n_features", "classes"):
        if previous.get(key) != current.get(key):
            changes.append(f"{key} {previous.get(key)!r} -> {current.get(key)!r}")
    old_src, new_src = previous.get("source") or {}, current.get("source") or {}
    for key in sorted(set(old_src) | set(new_src)):
        if old_src.get(key) != new_src.get(key):
            what = "file content (SHA-256)" if key == "file_sha256" else key
            changes.append(f"{what} {_short(old_src.get(key))} -> {_short(new_src.get(key))}")
    if previous.get("sha256") != current.get("sha256") and not changes:
        changes.append(
            f"content (SHA-256 {_short(previous.get('sha256'))} -> {_short(current.get('sha256'))})"
        )
    return changes


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "..."
    return repr(value)


__all__ = [
    "attach_models",
    "data_changes",
    "load_model",
    "read_json",
    "read_results",
    "results_entries",
    "run_from_entry",
    "run_id",
    "settings_changes",
    "write_models",
]
