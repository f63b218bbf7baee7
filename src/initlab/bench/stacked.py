"""The batched engine: :func:`train_stacked` trains every member of a
:class:`~initlab.bench.nets.StackedMLP` at once, with :func:`initlab.train`'s math member by
member (losses: :mod:`initlab.bench.losses`; optimizers: :mod:`initlab.bench.optimizers`).

Members never interact: each has its own loss, clipping norm, optimizer state, mini-batch order
(``randperm`` seeded by its seed, as in :func:`initlab.train`), dropout masks and divergence.
Full-batch GD without L2 or clipping runs as a fused plan (forward, backward and update with
no separate gradient tensors); divergence is checked at every log step, and a window in which a
member went non-finite is replayed from a snapshot to find the exact iteration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from initlab._core.rng import derive_seed
from initlab._core.validation import check_seed
from initlab.bench import clip as _clip
from initlab.bench.inputs import DataLike, as_dataset
from initlab.bench.losses import stacked_accuracy, targets
from initlab.bench.nets import _FUNCTIONAL, StackedMLP, StackedWorkspace, _stacked_loss
from initlab.bench.optimizers import Batches, ElementwiseOptimizer
from initlab.bench.options import OptimizerName, RunOptions, merge_options
from initlab.bench.results import History, Run

FAST_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")


def train_stacked(
    model: StackedMLP,
    data: DataLike,
    *,
    labels: Sequence[str],
    seeds: Sequence[int],
    optimizer: OptimizerName = "gd",
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
    options: RunOptions | None = None,
) -> list[Run]:
    """Train every member of ``model`` (its current weights) at once; one :class:`Run` each.

    The math is :func:`initlab.train`'s, member by member (see the module docstring).
    ``labels[b]`` and ``seeds[b]`` name member ``b``. ``seconds`` of each run is the wall
    time of the whole group. ``advance(k)`` (optional) is called as iterations complete. The
    run options may also come as one ``options=RunOptions(...)``; the members' dtype and
    dropout are the model's.
    """
    members = model.members
    if len(labels) != members or len(seeds) != members:
        raise ValueError(
            f"labels and seeds need one entry per member ({members}); got {len(labels)} "
            f"labels and {len(seeds)} seeds"
        )
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    if not model.fast:
        slow = sorted(set(model.activations) - set(FAST_ACTIVATIONS))
        raise ValueError(
            f"stacked training supports activations {', '.join(FAST_ACTIVATIONS)}; got "
            f"{', '.join(slow)} (train these runs one at a time with initlab.train)"
        )
    opts = merge_options(options, "train_stacked", optimizer=optimizer, lr=lr,
                         iterations=iterations, batch_size=batch_size, l2=l2,
                         clip_norm=clip_norm, clip_value=clip_value,
                         clip_adaptive=clip_adaptive, momentum=momentum, betas=betas, eps=eps,
                         log_every=log_every)  # fmt: skip
    model_dtype = str(model.weights[0].dtype).removeprefix("torch.")
    if opts.dtype not in (None, model_dtype) or opts.dropout not in (0.0, model.dropout):
        raise ValueError(
            f"train_stacked trains the model's own dtype ({model_dtype}) and dropout "
            f"({model.dropout}); got options dtype={opts.dtype!r}, dropout={opts.dropout} (build "
            f"the StackedMLP with the ones you want)"
        )
    dataset = as_dataset(data)
    if dataset.n_features != model.layer_dims[0]:
        raise ValueError(
            f"the data has {dataset.n_features} features but layer_dims starts with "
            f"{model.layer_dims[0]}"
        )
    loop = _StackedLoop(model, dataset, opts, seeds)
    start = time.perf_counter()
    with torch.no_grad():
        loop.run(advance or (lambda k=1: None))
        seconds = time.perf_counter() - start
        test_acc: list[float | None] = [None] * members
        if dataset.x_test.shape[0]:
            z_test = model(dataset.x_test.to(loop.dtype)).transpose(1, 2)
            test_acc = stacked_accuracy(model.output, z_test, dataset.y_test).tolist()
    return loop.runs(labels, seeds, test_acc, seconds, dataset.name)


# The full-data loss and accuracy per member, (B,) each, as a logged step reads them.
_Measured = tuple[torch.Tensor, torch.Tensor]


class _StackedLoop:
    """The state of one batched training: stacked weights and gradients, workspaces per
    batch size, optimizer, samplers, dropout generators and each member's history."""

    def __init__(
        self, model: StackedMLP, dataset: Any, opts: RunOptions, seeds: Sequence[int]
    ) -> None:
        self.model, self.opts = model, opts
        self.dtype = dtype = model.weights[0].dtype
        self.output = model.output
        self.x, self.y = dataset.x_train.to(dtype), dataset.y_train
        n, n_out = int(self.x.shape[0]), model.layer_dims[-1]
        self.n = n
        t = targets(self.output, self.y, n_out, dtype)
        if self.output == "softmax":
            t = F.one_hot(t, n_out).to(dtype)
        self.t, self.t_full = t, t.T.unsqueeze(0)
        batch = n if opts.batch_size is None else min(opts.batch_size, n)
        self.full = StackedWorkspace(model, n)
        self.full.set_inputs(self.x)
        self.spaces: dict[int, StackedWorkspace] = {n: self.full}
        self.weights = weights = [w.detach() for w in model.weights]
        self.grads = grads = [torch.zeros_like(w) for w in weights]
        self.w_views = [w[:, :, :-1] for w in weights] + [w[:, :, -1:] for w in weights]
        self.g_views = [g[:, :, :-1] for g in grads] + [g[:, :, -1:] for g in grads]
        self.opt = ElementwiseOptimizer(weights, opts)
        self.fused = (opts.optimizer in ("gd", "sgd") and not opts.l2 and opts.clip_norm is None
                      and opts.clip_value is None and opts.clip_adaptive is None)  # fmt: skip
        self.drop_gens = ([torch.Generator().manual_seed(derive_seed(s, "dropout")) for s in seeds]
                          if model.dropout else None)  # fmt: skip
        self.samplers = ([Batches(n, batch, torch.Generator().manual_seed(int(s))) for s in seeds]
                         if batch < n else None)  # fmt: skip
        self.names = [f"linear{i + 1}" for i in range(len(weights))]
        members = model.members
        self.alive = [True] * members
        self.diverged: list[tuple[int | None, str | None]] = [(None, None)] * members
        # per log step: (iteration, alive flags, losses, accuracies, weight norms (L, B),
        # gradient norms (L, B)), as read back in one go
        self.log: list[tuple[int, list[bool], list[float], list[float], Any, Any]] = []
        self.plan = (self.full.fused_gd_plan(self.t_full, opts.lr, shared_input=True)
                     if self.fused and self.samplers is None and not self.drop_gens
                     else None)  # fmt: skip

    # -- one step
    def step(self, with_grads: bool, measure: bool = False) -> _Measured | None:
        """Forward and backward on the next batch; with ``with_grads`` false the backward
        also applies the fused GD update. With ``measure``, on full-batch steps without
        dropout, returns the full-data loss and accuracy :meth:`evaluate` would compute (the
        same forward: read before the backward overwrites the logits), else ``None``."""
        if self.samplers is None:
            space, target = self.full, self.t_full
        else:
            idx = torch.stack([s.next() for s in self.samplers])
            size = int(idx.shape[1])
            if size not in self.spaces:
                self.spaces[size] = StackedWorkspace(self.model, size)
            space = self.spaces[size]
            space.set_inputs(self.x[idx])  # size < n: never the full-data workspace
            target = self.t[idx].transpose(1, 2)
        z = space.forward(self.drop_gens)
        measured: _Measured | None = None
        if measure and space is self.full and not self.drop_gens:
            measured = (_stacked_loss(self.output, z, self.t_full),
                        stacked_accuracy(self.output, z, self.y))  # fmt: skip
        if not with_grads:
            space.backward(target, None, self.opts.lr)
            return measured
        space.backward(target, self.grads)
        if self.opts.l2:
            k = len(self.weights)
            for g, w in zip(self.g_views[:k], self.w_views[:k], strict=True):
                g.add_(w, alpha=self.opts.l2 / space.n)

    def update(self) -> None:
        opts = self.opts
        if opts.clip_adaptive is not None:
            _clip.clip_adaptive_(self.w_views, self.g_views, opts.clip_adaptive, batched=True)
        if opts.clip_norm is not None:
            _clip.clip_by_norm_(self.grads, opts.clip_norm, batched=True)
        if opts.clip_value is not None:
            _clip.clip_by_value_(self.grads, opts.clip_value)
        self.opt.step(self.grads)

    def advance_to(self, it: int, stop: int) -> None:
        """The iterations after log step ``it`` up to (not including) ``stop``."""
        for _ in range(it + 1, stop):
            if self.plan is not None:
                for call in self.plan:
                    call()
            elif self.fused:
                self.step(False)
            else:
                self.step(True)
                self.update()

    # -- metrics and divergence
    def evaluate(
        self, measured: _Measured | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[bool], torch.Tensor]:
        """Full-data loss and accuracy, finiteness, and weight norms ``(L, B)``, per member;
        ``measured``: the loss and accuracy a full-batch :meth:`step` already read."""
        k = len(self.weights)
        if measured is None:
            z = self.full.forward(None)
            loss, acc = _stacked_loss(self.output, z, self.t_full), None
        else:
            loss, acc = measured
        w_norms = torch.stack([torch.linalg.vector_norm(w, dim=(1, 2)) for w in self.w_views[:k]])
        if self.opts.l2:
            loss = loss + self.opts.l2 / (2 * self.n) * w_norms.pow(2).sum(0)
        if acc is None:
            acc = stacked_accuracy(self.output, z, self.y)
        finite = torch.isfinite(loss)
        for w in self.weights:
            finite &= torch.isfinite(w).all(2).all(1)
        return loss, acc, finite.tolist(), w_norms

    def bad_layer(self, b: int) -> str:
        a = self.x.T
        for i, w in enumerate(self.weights):
            wb = w[b]
            z = wb[:, :-1] @ a + wb[:, -1:]
            if not (bool(torch.isfinite(wb).all()) and bool(torch.isfinite(z).all())):
                return self.names[i]
            if i < len(self.weights) - 1:
                a = _FUNCTIONAL[self.model.activations[i]](z)
        return "loss"

    def mark(self, finite: list[bool], iteration: int) -> None:
        for b, ok in enumerate(finite):
            if self.alive[b] and not ok:
                self.alive[b] = False
                self.diverged[b] = (iteration, self.bad_layer(b))

    def snapshot(self) -> Any:
        return ([w.clone() for w in self.weights], self.opt.snapshot(),
                [s.state() for s in self.samplers] if self.samplers else None,
                [g.get_state() for g in self.drop_gens] if self.drop_gens else None)  # fmt: skip

    def restore(self, snap: Any) -> None:
        for w, saved in zip(self.weights, snap[0], strict=True):
            w.copy_(saved)
        self.opt.restore(snap[1])
        for sampler, state in zip(self.samplers or [], snap[2] or [], strict=True):
            sampler.restore(state)
        for g, state in zip(self.drop_gens or [], snap[3] or [], strict=True):
            g.set_state(state)

    def replay(self, snap: Any, start: int, stop: int) -> None:
        """Re-run iterations ``start..stop`` checking every one; ends with grads at ``stop``."""
        self.restore(snap)
        for j in range(start, stop + 1):
            self.mark(self.evaluate()[2], j)
            if j == stop:
                self.step(True)
                return
            if j == start or not self.fused:
                self.step(True)
                self.update()
            elif self.plan is not None:
                for call in self.plan:
                    call()
            else:
                self.step(False)

    def record(self, it: int, measured: _Measured | None = None) -> None:
        """Gradients at log step ``it`` are in ``grads``: find divergences (replaying the
        window since the last log step) and append every live member's metrics
        (``measured``: the step's own full-data loss and accuracy, if it read them)."""
        loss, acc, finite, w_norms = self.evaluate(measured)
        if any(a and not f for a, f in zip(self.alive, finite, strict=True)):
            if self._snap is None:
                self.mark(finite, it)
            else:
                self.replay(self._snap, self._snap_at, it)
            loss, acc, finite, w_norms = self.evaluate()
        k = len(self.weights)
        g_norms = torch.stack([torch.linalg.vector_norm(g, dim=(1, 2)) for g in self.g_views[:k]])
        # one entry for the whole ensemble: per-member histories are built once, at the end
        self.log.append((it, list(self.alive), loss.tolist(), acc.tolist(), w_norms.tolist(),
                         g_norms.tolist()))  # fmt: skip

    def history(self, b: int) -> History:
        """Member ``b``'s metrics at the log steps it was alive for."""
        entries = [e for e in self.log if e[1][b]]
        if not entries:  # diverged before its first log step
            return History()
        return History(
            [e[0] for e in entries],
            [e[2][b] for e in entries],
            [e[3][b] for e in entries],
            {name: [e[4][i][b] for e in entries] for i, name in enumerate(self.names)},
            {name: [e[5][i][b] for e in entries] for i, name in enumerate(self.names)},
        )

    def run(self, advance: Callable[..., None]) -> None:
        """All iterations: at each log step (``0, k, 2k, ..., iterations``) a gradient step
        and :meth:`record`, then the update and the iterations up to the next log step."""
        iterations, log_every = self.opts.iterations, self.opts.log_interval
        self._snap: Any = None
        self._snap_at, advanced, it = 0, 0, 0
        while True:
            candidate = self.snapshot()
            self.record(it, self.step(True, measure=True))
            if it == iterations or not any(self.alive):
                advance(iterations - advanced)
                return
            self._snap, self._snap_at = candidate, it
            self.update()
            step_count = 1 if it == 0 else log_every
            advance(step_count)
            advanced += step_count
            stop = min(it + log_every - it % log_every, iterations)
            self.advance_to(it, stop)
            it = stop

    def runs(
        self, labels: Sequence[str], seeds: Sequence[int], test_acc: list[float | None],
        seconds: float, data_name: str,
    ) -> list[Run]:  # fmt: skip
        opts, model = self.opts, self.model
        config = {"optimizer": opts.optimizer, "lr": opts.lr, "iterations": opts.iterations,
                  "batch_size": opts.batch_size, "l2": opts.l2, "clip_norm": opts.clip_norm,
                  "clip_value": opts.clip_value, "clip_adaptive": opts.clip_adaptive,
                  "dtype": str(self.dtype).removeprefix("torch."), "output": self.output,
                  "data": data_name, "layer_dims": list(model.layer_dims),
                  "activation": list(model.activations), "dropout": model.dropout,
                  "group_size": model.members}  # fmt: skip
        out = []
        for b in range(model.members):
            h = self.history(b)
            if self.alive[b]:
                run = Run(str(labels[b]), int(seeds[b]), "finished", opts.iterations, h.loss[-1],
                          h.train_accuracy[-1], test_acc[b], seconds, h, None, None,
                          dict(config), model.member(b))  # fmt: skip
            else:
                at, layer = self.diverged[b]
                run = Run(str(labels[b]), int(seeds[b]), "diverged", int(at or 0), None, None,
                          None, seconds, h, at, layer, dict(config), model.member(b))  # fmt: skip
            out.append(run)
        return out


__all__ = ["FAST_ACTIVATIONS", "train_stacked"]
