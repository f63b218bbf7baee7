"""The training loop: losses from logits, optimizers, L2, clipping, history, divergence.

:func:`train` trains any ``nn.Module`` with plain autograd. :func:`train_stacked` trains a
:class:`~initlab.nets.StackedMLP` (many independent MLPs stacked along a member dimension)
with the same math, one fused step for all members; :func:`initlab.compare` uses it.

Definitions shared by both (``m`` = examples in the batch, ``z`` the logits):

- loss, ``output="sigmoid"``: ``mean(softplus(z) - y z)`` (binary cross-entropy from logits);
  ``"softmax"``: ``mean(logsumexp(z) - z_y)``; ``"linear"``: ``mean((z - y)^2)``.
- L2 (``l2 = lambda``, the course's convention): the loss gains ``lambda / (2 m) * sum_l
  ||W_l||_F^2`` over weight matrices (not biases), so each weight gradient gains
  ``lambda / m * W_l``.
- clipping (after L2, before the optimizer): :mod:`initlab.clip`.
- optimizers: ``gd`` (full batch) and ``sgd`` (mini-batches): ``p -= lr g``; ``momentum``:
  ``v = mu v + g; p -= lr v`` (PyTorch's convention); ``adam``: PyTorch's Adam with bias
  correction.
- history at iterations ``0, k, 2k, ...`` and after the last update: loss and accuracy on the
  whole training set (dropout off), per-layer weight norm ``||W_l||_F`` and gradient norm of the
  weight gradient (before clipping) at that iteration.
- divergence: the first iteration whose training loss (or a parameter) is NaN or Inf stops the
  run with status ``diverged``; results after it are not reported.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from initlab._core.rng import derive_seed, seeded_global_rng
from initlab._core.table import format_table
from initlab._core.validation import check_choice, check_number
from initlab.bench import clip as _clip
from initlab.bench.choices import OPTIMIZERS
from initlab.bench.datasets import Dataset
from initlab.bench.datasets import load as load_dataset
from initlab.bench.nets import StackedMLP, StackedWorkspace, _stacked_loss
from initlab.initializers.apply import init_model
from initlab.initializers.registry import Spec, get

Optimizer = Literal["gd", "sgd", "momentum", "adam"]
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@runtime_checkable
class Monitor(Protocol):
    """Watches a training run: ``step(iteration)`` is called before each forward pass."""

    def step(self, iteration: int) -> None: ...


# ---------------------------------------------------------------------------- results
@dataclass
class History:
    """Metrics every ``log_every`` iterations (and after the last update)."""

    iteration: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    weight_norm: dict[str, list[float]] = field(default_factory=dict)
    grad_norm: dict[str, list[float]] = field(default_factory=dict)

    def append(self, iteration: int, loss: float, accuracy: float,
               weight_norms: dict[str, float], grad_norms: dict[str, float]) -> None:  # fmt: skip
        self.iteration.append(int(iteration))
        self.loss.append(float(loss))
        self.train_accuracy.append(float(accuracy))
        for name, value in weight_norms.items():
            self.weight_norm.setdefault(name, []).append(float(value))
        for name, value in grad_norms.items():
            self.grad_norm.setdefault(name, []).append(float(value))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per logged iteration (for CSV)."""
        out = []
        for i, it in enumerate(self.iteration):
            row: dict[str, Any] = {"iteration": it, "loss": self.loss[i],
                                   "train_accuracy": self.train_accuracy[i]}  # fmt: skip
            for name, values in self.weight_norm.items():
                row[f"weight_norm.{name}"] = values[i]
            for name, values in self.grad_norm.items():
                row[f"grad_norm.{name}"] = values[i]
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"iteration": list(self.iteration), "loss": list(self.loss),
                "train_accuracy": list(self.train_accuracy),
                "weight_norm": {k: list(v) for k, v in self.weight_norm.items()},
                "grad_norm": {k: list(v) for k, v in self.grad_norm.items()}}  # fmt: skip


@dataclass
class Run:
    """One training run. ``final_*`` are ``None`` when the run diverged."""

    scheme: str
    seed: int | None
    status: Literal["finished", "diverged"]
    iterations: int
    final_loss: float | None
    train_accuracy: float | None
    test_accuracy: float | None
    seconds: float
    history: History
    diverged_at: int | None = None
    diverged_layer: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    _HEADERS = ("scheme", "seed", "final loss", "train acc", "test acc", "status", "seconds")

    def row(self) -> tuple[Any, ...]:
        status = self.status
        if self.status == "diverged":
            status = f"diverged at {self.diverged_at} ({self.diverged_layer})"
        return (self.scheme, self.seed, self.final_loss, self.train_accuracy,
                self.test_accuracy, status, round(self.seconds, 2))  # fmt: skip

    def __str__(self) -> str:
        return format_table(self._HEADERS, [self.row()])

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        out = {
            "scheme": self.scheme, "seed": self.seed, "status": self.status,
            "iterations": self.iterations, "final_loss": self.final_loss,
            "train_accuracy": self.train_accuracy, "test_accuracy": self.test_accuracy,
            "seconds": self.seconds, "diverged_at": self.diverged_at,
            "diverged_layer": self.diverged_layer, "config": dict(self.config),
        }  # fmt: skip
        if history:
            out["history"] = self.history.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        h = data.get("history") or {}
        history = History(list(h.get("iteration", [])), list(h.get("loss", [])),
                          list(h.get("train_accuracy", [])), dict(h.get("weight_norm", {})),
                          dict(h.get("grad_norm", {})))  # fmt: skip
        keys = ("scheme", "seed", "status", "iterations", "final_loss", "train_accuracy",
                "test_accuracy", "seconds", "diverged_at", "diverged_layer", "config")  # fmt: skip
        return cls(history=history, **{k: data.get(k) for k in keys})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, description: str) -> Iterator[Any]:
    """A ``rich`` progress bar (or a silent stand-in); yields ``advance(n)``."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,  # fmt: skip
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:  # fmt: skip
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextlib.contextmanager
def few_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` intra-op threads inside the block (tiny ops run faster on one)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def as_dataset(data: Dataset | str | Sequence[Any]) -> Dataset:
    """A :class:`Dataset` from a dataset, a name/path, or ``(x, y[, x_test, y_test])``."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return load_dataset(data)
    if isinstance(data, tuple | list) and len(data) in (2, 4):
        import numpy as np

        from initlab.bench.datasets import _make

        arrays = [np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)
                  for a in data]  # fmt: skip
        x, y = arrays[0], arrays[1]
        xt, yt = (arrays[2], arrays[3]) if len(arrays) == 4 else (x[:0], y[:0])
        for xa, ya, label in ((x, y, "x"), (xt, yt, "x_test")):
            if xa.ndim != 2 or ya.reshape(-1).shape[0] != xa.shape[0]:
                raise ValueError(
                    f"data: {label} must have shape (N, features) and its labels (N,); "
                    f"got {xa.shape} and {ya.shape}"
                )
        if not np.isfinite(x).all():
            raise ValueError("data: x holds NaN or Inf values")
        return _make("data", x, y.reshape(-1), xt, yt.reshape(-1))
    raise TypeError(
        f"data must be a Dataset, a dataset name or path, or (x, y[, x_test, y_test]); "
        f"got {type(data).__name__}"
    )


def targets(output: str, y: torch.Tensor, n_out: int, dtype: torch.dtype) -> torch.Tensor:
    """Class labels ``y`` (N,) as the loss's targets: (N, n_out) floats or (N,) indices."""
    n_classes = int(y.max()) + 1 if y.numel() else 0
    if output == "softmax":
        if n_classes > n_out:
            raise ValueError(f"labels go up to {n_classes - 1} but the model has {n_out} outputs")
        return y.long()
    if n_out == 1:
        if n_classes > 2:
            raise ValueError(
                f"{n_classes} classes need a softmax output with {n_classes} units; the model "
                f"has 1 {output} output"
            )
        return y.to(dtype).unsqueeze(1)
    if n_classes > n_out:
        raise ValueError(f"labels go up to {n_classes - 1} but the model has {n_out} outputs")
    return F.one_hot(y.long(), n_out).to(dtype)


def loss_from_logits(output: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean loss of ``logits`` (N, n_out) against ``target`` (see the module docstring)."""
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(logits, target)
    if output == "softmax":
        return F.cross_entropy(logits, target)
    return F.mse_loss(logits, target)


def accuracy(output: str, logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``y`` predicted right: ``z > 0`` (one sigmoid/linear output) or argmax."""
    if y.numel() == 0:
        return float("nan")
    if logits.shape[-1] == 1:
        threshold = 0.5 if output == "linear" else 0.0
        predicted = (logits[..., 0] > threshold).long()
    else:
        predicted = logits.argmax(-1)
    return float((predicted == y).double().mean())


class _Optimizer:
    """Elementwise optimizers on lists of tensors (identical math for stacked members)."""

    def __init__(self, name: str, params: list[torch.Tensor], lr: float, momentum: float,
                 betas: tuple[float, float], eps: float) -> None:  # fmt: skip
        self.name, self.params, self.lr = name, params, lr
        self.momentum, self.betas, self.eps = momentum, betas, eps
        self.t = 0
        self.state: list[torch.Tensor] = []
        if name == "momentum":
            self.state = [torch.zeros_like(p) for p in params]
        elif name == "adam":
            self.state = [torch.zeros_like(p) for p in params * 2]

    def step(self, grads: list[torch.Tensor]) -> None:
        params, lr = self.params, self.lr
        if self.name in ("gd", "sgd"):
            torch._foreach_add_(params, grads, alpha=-lr)
        elif self.name == "momentum":
            torch._foreach_mul_(self.state, self.momentum)
            torch._foreach_add_(self.state, grads)
            torch._foreach_add_(params, self.state, alpha=-lr)
        else:
            self.t += 1
            b1, b2 = self.betas
            n = len(params)
            m, v = self.state[:n], self.state[n:]
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, math.sqrt(1 - b2**self.t))
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(params, m, denom, value=-lr / (1 - b1**self.t))

    def snapshot(self) -> tuple[int, list[torch.Tensor]]:
        return self.t, [s.clone() for s in self.state]

    def restore(self, snap: tuple[int, list[torch.Tensor]]) -> None:
        self.t = snap[0]
        for s, saved in zip(self.state, snap[1], strict=True):
            s.copy_(saved)


def check_options(optimizer: str, lr: float, iterations: int, batch_size: int | None, l2: float,
                  clip_norm: float | None, clip_value: float | None,
                  clip_adaptive: float | None, log_every: int | None,
                  momentum: float) -> int:  # fmt: skip
    """Validate the shared training options; returns ``log_every`` resolved."""
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_number("lr", lr, minimum=0.0, strict_minimum=True)
    iterations = int(check_number("iterations", iterations, minimum=1, integer=True))
    if batch_size is not None:
        check_number("batch_size", batch_size, minimum=1, integer=True)
    if optimizer == "gd" and batch_size is not None:
        raise ValueError(
            f"optimizer 'gd' is full-batch gradient descent; got batch_size={batch_size} "
            f"(use optimizer='sgd' for mini-batches)"
        )
    check_number("l2", l2, minimum=0.0)
    check_number("momentum", momentum, minimum=0.0, maximum=1.0)
    for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value),
                        ("clip_adaptive", clip_adaptive)):  # fmt: skip
        if value is not None:
            check_number(name, value, minimum=0.0, strict_minimum=True)
    if log_every is None:
        return max(1, iterations // 100)
    return int(check_number("log_every", log_every, minimum=1, integer=True))


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        if dtype is not None and dtype not in DTYPES.values():
            raise ValueError(f"dtype must be float32 or float64; got {dtype}")
        return dtype
    return DTYPES[check_choice("dtype", str(dtype).removeprefix("torch."), tuple(DTYPES))]


def _first_nonfinite_module(model: nn.Module, x: torch.Tensor) -> str | None:
    """The first module (in execution order) whose parameters or output are non-finite."""
    found: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue

        def hook(mod: nn.Module, inputs: Any, out: Any, name: str = name) -> None:
            if found:
                return
            bad_param = any(not bool(torch.isfinite(p).all())
                            for p in mod.parameters(recurse=False))  # fmt: skip
            if bad_param or (isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all())):
                found.append(name)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def _layers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(layer name, weight) for every parameter with >= 2 dims, named by its module."""
    out = []
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            out.append((name.rsplit(".", 1)[0] if "." in name else name, param))
    return out


class _Batches:
    """Mini-batch indices: reshuffle (``randperm`` from ``generator``) every epoch; the last
    batch of an epoch holds the remainder."""

    def __init__(self, n: int, batch: int, generator: torch.Generator) -> None:
        self.n, self.batch, self.generator = n, batch, generator
        self.order = torch.arange(n)
        self.position = n

    def next(self) -> torch.Tensor:
        if self.position >= self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.position = 0
        idx = self.order[self.position : self.position + self.batch]
        self.position += self.batch
        return idx

    def state(self) -> tuple[torch.Tensor, int, torch.Tensor]:
        return self.order.clone(), self.position, self.generator.get_state()

    def restore(self, state: tuple[torch.Tensor, int, torch.Tensor]) -> None:
        self.order, self.position = state[0].clone(), state[1]
        self.generator.set_state(state[2])


# ---------------------------------------------------------------------------- train
def train(
    model: nn.Module,
    data: Dataset | str | Sequence[Any],
    *,
    init: Spec | None = "he",
    optimizer: Optimizer = "gd",
    lr: float = 0.01,
    iterations: int = 15000,
    batch_size: int | None = None,
    l2: float = 0.0,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    clip_adaptive: float | None = None,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    seed: int = 0,
    log_every: int | None = None,
    dtype: torch.dtype | str | None = None,
    output: str | None = None,
    monitor: Monitor | None = None,
    progress: bool = True,
) -> Run:
    """Train ``model`` on ``data`` in place; returns a :class:`Run` (history, final metrics).

    ``init``: a scheme spec applied with :func:`initlab.init_model` (seeded by ``seed``), or
    ``None`` to keep the model's weights. ``output``: how the logits are read (``sigmoid``,
    ``softmax`` or ``linear``); default the model's ``.output`` attribute, else sigmoid for
    one output unit and softmax for several. ``batch_size`` (with ``optimizer="sgd"``,
    ``momentum`` or ``adam``): mini-batches drawn by reshuffling every epoch;
    ``iterations`` counts updates. Dropout layers in the model are active while training
    (their masks come from torch's RNG seeded with ``seed`` inside ``fork_rng``, so the
    global RNG is left as it was). ``monitor.step(i)`` is called before each forward pass.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"train needs a torch.nn.Module; got {type(model).__name__}")
    if monitor is not None and not callable(getattr(monitor, "step", None)):
        raise TypeError(f"monitor must have a step(iteration) method; got {type(monitor).__name__}")
    log_every = check_options(optimizer, lr, iterations, batch_size, l2, clip_norm, clip_value,
                              clip_adaptive, log_every, momentum)  # fmt: skip
    seed = int(check_number("seed", seed, minimum=0, integer=True))
    dataset = as_dataset(data)
    target_dtype = _resolve_dtype(dtype)
    if target_dtype is not None:
        model.to(target_dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    work_dtype = params[0].dtype
    device = params[0].device
    if init is not None:
        get(init)
        init_model(model, init, seed=seed)
    scheme = "kept" if init is None else str(init)
    x = dataset.x_train.to(device, work_dtype)
    y = dataset.y_train.to(device)
    was_training = model.training
    model.eval()  # no dropout draws from the global RNG while probing the output size
    with torch.no_grad():
        n_out = int(model(x[:1]).shape[-1])
    model.train(was_training)
    output = output or getattr(model, "output", None) or ("sigmoid" if n_out == 1 else "softmax")
    check_choice("output", output, ("sigmoid", "softmax", "linear"))
    t_all = targets(output, y, n_out, work_dtype)
    layers = _layers(model)
    weight_ids = {id(w) for _, w in layers}
    opt = _Optimizer(optimizer, params, lr, momentum, betas, eps)
    history = History()
    n = x.shape[0]
    batch = n if batch_size is None else min(int(batch_size), n)
    batches = _Batches(n, batch, torch.Generator(device="cpu").manual_seed(seed))
    config = {"optimizer": optimizer, "lr": lr, "iterations": iterations, "batch_size": batch_size,
              "l2": l2, "clip_norm": clip_norm, "clip_value": clip_value,
              "clip_adaptive": clip_adaptive, "dtype": str(work_dtype).removeprefix("torch."),
              "output": output, "data": dataset.name}  # fmt: skip

    def evaluate() -> tuple[float, float, torch.Tensor]:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(x)
            loss = loss_from_logits(output, logits, t_all)
            if l2:
                loss = loss + l2 / (2 * n) * sum(w.pow(2).sum() for _, w in layers)
        model.train(was_training)
        return float(loss), accuracy(output, logits, y), logits

    def record(iteration: int) -> None:
        loss, acc, _ = evaluate()
        history.append(
            iteration, loss, acc,
            {name: float(w.detach().norm()) for name, w in layers},
            {name: float(w.grad.norm()) if w.grad is not None else float("nan")
             for name, w in layers},
        )  # fmt: skip

    status, diverged_at, diverged_layer = "finished", None, None
    start = time.perf_counter()
    model.train()
    threads = 1 if sum(p.numel() for p in params) * n < 50_000_000 else None
    with (
        seeded_global_rng(seed, [device]),
        few_threads(threads),
        progress_bar(progress, iterations, "train") as advance,
    ):
        for it in range(iterations + 1):
            final = it == iterations
            if monitor is not None and not final:
                monitor.step(it)
            if batch == n:
                xb, tb = x, t_all
            else:
                idx = batches.next().to(device)
                xb, tb = x[idx], t_all[idx]
            for p in params:
                p.grad = None
            logits = model(xb)
            loss = loss_from_logits(output, logits, tb)
            if not bool(torch.isfinite(loss)) or not all(
                bool(torch.isfinite(p).all()) for p in params
            ):
                status, diverged_at = "diverged", it
                diverged_layer = _first_nonfinite_module(model, xb) or "loss"
                break
            loss.backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            if l2:
                m = xb.shape[0]
                for p, g in zip(params, grads, strict=True):
                    if id(p) in weight_ids:
                        g.add_(p.detach(), alpha=l2 / m)
            if final or it % log_every == 0:
                record(it)
                if final:
                    break
                advance(log_every if it else 1)
            if clip_adaptive is not None:
                _clip.clip_adaptive_([p.detach() for p in params], grads, clip_adaptive)
            if clip_norm is not None:
                _clip.clip_by_norm_(grads, clip_norm)
            if clip_value is not None:
                _clip.clip_by_value_(grads, clip_value)
            with torch.no_grad():
                opt.step(grads)
    for p in params:
        p.grad = None
    seconds = time.perf_counter() - start
    if status == "diverged":
        return Run(scheme, seed, "diverged", int(diverged_at or 0), None, None, None, seconds,
                   history, diverged_at, diverged_layer, config, model)  # fmt: skip
    final_loss, train_acc = history.loss[-1], history.train_accuracy[-1]
    test_acc = None
    if dataset.x_test.shape[0]:
        model.eval()
        with torch.no_grad():
            test_logits = model(dataset.x_test.to(device, work_dtype))
        test_acc = accuracy(output, test_logits, dataset.y_test.to(device))
    model.train()
    return Run(scheme, seed, "finished", iterations, final_loss, train_acc, test_acc, seconds,
               history, None, None, config, model)  # fmt: skip


# ---------------------------------------------------------------------------- stacked
def _stacked_accuracy(output: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member accuracy of logits ``z`` (B, nL, n) against labels ``y`` (n,)."""
    if z.shape[1] == 1:
        predicted = (z[:, 0, :] > (0.5 if output == "linear" else 0.0)).long()
    else:
        predicted = z.argmax(1)
    return (predicted == y).double().mean(1)


def train_stacked(
    model: StackedMLP,
    data: Dataset | str | Sequence[Any],
    *,
    labels: Sequence[str],
    seeds: Sequence[int],
    optimizer: Optimizer = "gd",
    lr: float = 0.01,
    iterations: int = 15000,
    batch_size: int | None = None,
    l2: float = 0.0,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    clip_adaptive: float | None = None,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    log_every: int | None = None,
    advance: Any = None,
) -> list[Run]:
    """Train every member of ``model`` (its current weights) at once; one :class:`Run` each.

    The math is :func:`train`'s (see the module docstring), member by member: each has its
    own loss, clipping norm, optimizer state, mini-batch order (``randperm`` seeded by its
    seed, as in :func:`train`), dropout masks and divergence. Members never interact, so a
    member's results do not depend on which others share the batch. ``labels[b]`` and
    ``seeds[b]`` name member ``b``. Divergence is checked at every log step; when a member
    went non-finite the window since the last log step is replayed from a snapshot to find
    the exact iteration. ``seconds`` of each run is the wall time of the whole group.
    """
    members = model.members
    if len(labels) != members or len(seeds) != members:
        raise ValueError(
            f"labels and seeds need one entry per member ({members}); got {len(labels)} "
            f"labels and {len(seeds)} seeds"
        )
    if not model.fast:
        slow = sorted(set(model.activations) - set(_FAST_ACTIVATIONS))
        raise ValueError(
            f"stacked training supports activations {', '.join(_FAST_ACTIVATIONS)}; got "
            f"{', '.join(slow)} (train these runs one at a time with initlab.train)"
        )
    log_every = check_options(optimizer, lr, iterations, batch_size, l2, clip_norm, clip_value,
                              clip_adaptive, log_every, momentum)  # fmt: skip
    dataset = as_dataset(data)
    dtype = model.weights[0].dtype
    output = model.output
    x, y = dataset.x_train.to(dtype), dataset.y_train
    n, n_out = int(x.shape[0]), model.layer_dims[-1]
    if x.shape[1] != model.layer_dims[0]:
        raise ValueError(
            f"the data has {x.shape[1]} features but layer_dims starts with {model.layer_dims[0]}"
        )
    t = targets(output, y, n_out, dtype)
    if output == "softmax":
        t = F.one_hot(t, n_out).to(dtype)
    t_full = t.T.unsqueeze(0)
    batch = n if batch_size is None else min(int(batch_size), n)
    full = StackedWorkspace(model, n)
    full.set_inputs(x)
    spaces: dict[int, StackedWorkspace] = {n: full}
    weights = [w.detach() for w in model.weights]
    grads = [torch.zeros_like(w) for w in weights]
    w_views = [w[:, :, :-1] for w in weights] + [w[:, :, -1:] for w in weights]
    g_views = [g[:, :, :-1] for g in grads] + [g[:, :, -1:] for g in grads]
    opt = _Optimizer(optimizer, weights, lr, momentum, betas, eps)
    fused = (
        optimizer in ("gd", "sgd")
        and not l2
        and clip_norm is None
        and (clip_value is None and clip_adaptive is None)
    )
    drop_gens = ([torch.Generator().manual_seed(derive_seed(s, "dropout")) for s in seeds]
                 if model.dropout else None)  # fmt: skip
    samplers = ([_Batches(n, batch, torch.Generator().manual_seed(int(s))) for s in seeds]
                if batch < n else None)  # fmt: skip
    names = [f"linear{i + 1}" for i in range(len(weights))]
    n_layers = len(weights)
    alive = [True] * members
    diverged = [(None, None)] * members
    histories = [History() for _ in range(members)]
    advance = advance or (lambda k=1: None)

    def step(with_grads: bool) -> None:
        if samplers is None:
            space, target = full, t_full
        else:
            idx = torch.stack([s.next() for s in samplers])
            size = int(idx.shape[1])
            if size not in spaces:
                spaces[size] = StackedWorkspace(model, size)
            space = spaces[size]
            space.set_inputs(x[idx])  # size < n: never the full-data workspace
            target = t[idx].transpose(1, 2)
        space.forward(drop_gens)
        if not with_grads:
            space.backward(target, None, lr)
            return
        space.backward(target, grads)
        if l2:
            for g, w in zip(g_views[: len(weights)], w_views[: len(weights)], strict=True):
                g.add_(w, alpha=l2 / space.n)

    def update() -> None:
        if clip_adaptive is not None:
            _clip.clip_adaptive_(w_views, g_views, clip_adaptive, batched=True)
        if clip_norm is not None:
            _clip.clip_by_norm_(grads, clip_norm, batched=True)
        if clip_value is not None:
            _clip.clip_by_value_(grads, clip_value)
        opt.step(grads)

    def evaluate() -> tuple[torch.Tensor, torch.Tensor, list[bool], torch.Tensor]:
        """Full-data loss and accuracy, finiteness, and weight norms ``(L, B)``, per member."""
        z = full.forward(None)
        loss = _stacked_loss(output, z, t_full)
        w_norms = torch.stack([torch.linalg.vector_norm(w, dim=(1, 2)) for w in w_views[:n_layers]])
        if l2:
            loss = loss + l2 / (2 * n) * w_norms.pow(2).sum(0)
        acc = _stacked_accuracy(output, z, y)
        finite = torch.isfinite(loss)
        for w in weights:
            finite &= torch.isfinite(w).all(2).all(1)
        return loss, acc, finite.tolist(), w_norms

    def bad_layer(b: int) -> str:
        a = x.T
        for i, w in enumerate(weights):
            wb = w[b]
            z = wb[:, :-1] @ a + wb[:, -1:]
            if not (bool(torch.isfinite(wb).all()) and bool(torch.isfinite(z).all())):
                return names[i]
            if i < len(weights) - 1:
                a = _stacked_act(model.activations[i], z)
        return "loss"

    def mark(finite: list[bool], iteration: int) -> None:
        for b in range(members):
            if alive[b] and not finite[b]:
                alive[b] = False
                diverged[b] = (iteration, bad_layer(b))

    def snapshot() -> Any:
        return ([w.clone() for w in weights], opt.snapshot(),
                [s.state() for s in samplers] if samplers else None,
                [g.get_state() for g in drop_gens] if drop_gens else None)  # fmt: skip

    def restore(snap: Any) -> None:
        for w, saved in zip(weights, snap[0], strict=True):
            w.copy_(saved)
        opt.restore(snap[1])
        for sampler, state in zip(samplers or [], snap[2] or [], strict=True):
            sampler.restore(state)
        for g, state in zip(drop_gens or [], snap[3] or [], strict=True):
            g.set_state(state)

    def replay(snap: Any, start: int, stop: int) -> None:
        """Re-run iterations ``start..stop`` checking every one; ends with grads at ``stop``."""
        restore(snap)
        for j in range(start, stop + 1):
            mark(evaluate()[2], j)
            if j == stop:
                step(True)
                return
            if j == start or not fused:
                step(True)
                update()
            elif plan is not None:
                for call in plan:
                    call()
            else:
                step(False)

    plan = (full.fused_gd_plan(t_full, lr, shared_input=True)
            if fused and samplers is None and not drop_gens else None)  # fmt: skip
    start_time = time.perf_counter()
    snap, snap_at = None, 0
    advanced = 0
    with torch.no_grad():
        it = 0
        while True:  # ``it`` is always a log step here: 0, k, 2k, ..., iterations
            candidate = snapshot()
            step(True)
            loss, acc, finite, w_norms = evaluate()
            if any(a and not f for a, f in zip(alive, finite, strict=True)):
                if snap is None:
                    mark(finite, it)
                else:
                    replay(snap, snap_at, it)
                loss, acc, finite, w_norms = evaluate()
            g_norms = torch.stack(
                [torch.linalg.vector_norm(g, dim=(1, 2)) for g in g_views[:n_layers]]
            )
            loss_l, acc_l = loss.tolist(), acc.tolist()
            wn, gn = w_norms.T.tolist(), g_norms.T.tolist()
            for b in range(members):
                if alive[b]:
                    histories[b].append(
                        it, loss_l[b], acc_l[b], dict(zip(names, wn[b], strict=True)),
                        dict(zip(names, gn[b], strict=True)),
                    )  # fmt: skip
            if it == iterations or not any(alive):
                advance(iterations - advanced)
                break
            snap, snap_at = candidate, it
            update()
            step_count = 1 if it == 0 else log_every
            advance(step_count)
            advanced += step_count
            # the iterations up to the next log step
            stop = min(it + log_every - it % log_every, iterations)
            if plan is not None:
                for _ in range(it + 1, stop):
                    for call in plan:
                        call()
            else:
                for _ in range(it + 1, stop):
                    if fused:
                        step(False)
                    else:
                        step(True)
                        update()
            it = stop
        seconds = time.perf_counter() - start_time
        test_acc: list[float | None] = [None] * members
        if dataset.x_test.shape[0]:
            z_test = model(dataset.x_test.to(dtype)).transpose(1, 2)
            test_acc = _stacked_accuracy(output, z_test, dataset.y_test).tolist()
    config = {"optimizer": optimizer, "lr": lr, "iterations": iterations, "batch_size": batch_size,
              "l2": l2, "clip_norm": clip_norm, "clip_value": clip_value,
              "clip_adaptive": clip_adaptive, "dtype": str(dtype).removeprefix("torch."),
              "output": output, "data": dataset.name, "layer_dims": list(model.layer_dims),
              "activation": list(model.activations), "dropout": model.dropout,
              "group_size": members}  # fmt: skip
    runs = []
    for b in range(members):
        h = histories[b]
        if alive[b]:
            run = Run(str(labels[b]), int(seeds[b]), "finished", iterations, h.loss[-1],
                      h.train_accuracy[-1], test_acc[b], seconds, h, None, None, dict(config),
                      model.member(b))  # fmt: skip
        else:
            at, layer = diverged[b]
            run = Run(str(labels[b]), int(seeds[b]), "diverged", int(at), None, None, None,
                      seconds, h, at, layer, dict(config), model.member(b))  # fmt: skip
        runs.append(run)
    return runs


_FAST_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")


def _stacked_act(name: str, z: torch.Tensor) -> torch.Tensor:
    from initlab.bench.nets import _FUNCTIONAL

    return _FUNCTIONAL[name](z)


__all__ = ["History", "Monitor", "Run", "train", "train_stacked"]
