"""The ``loop`` engine: each member of a chunk trained on its own, one after another, with
plain autograd; the same math as the ``vmap`` engine (:mod:`.ensemble`), member by member.

Why it exists: on the CPU, ``vmap`` turns a convolution over ``B`` members into one grouped
convolution, and PyTorch's grouped convolutions run far below its plain ones (measured on 2
cores: 20.7 GFLOP/s for 16 members of an 8 -> 16 channel 3x3 conv on digits, 0.13x a large
matmul), so a per-run loop trained the small CNN of ``benchmarks/sweep_speed.py`` 2.3x faster
than any ensemble. Here every member's convolutions take the plain kernels. ``engine="auto"``
picks it for models with convolutions (``engine_for`` in :mod:`.run`).

Per member and iteration: the full-batch loss :func:`.ensemble.member_loss` of ``model(x)``,
its gradient by ``torch.autograd.grad``, then the vmap engine's own clipping (:func:`.ensemble.
clip_`) and optimizer step (:func:`.ensemble.update_`) on the parameters seen as a batch of one
(``(1, *shape)`` views), so the formulas are shared, not copied. BatchNorm normalizes with
batch statistics and keeps no running statistics, as in the vmap engine. A member stops at its
first non-finite training loss (status ``diverged`` at that iteration); the others never share
a tensor with it. The numbers equal the vmap engine's to round-off (the kernels differ:
``tests/test_sweep_engine.py`` checks both against separate ``initlab.train`` runs).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from initlab._core.rng import parallel_map
from initlab._core.threads import few_threads
from initlab.bench.datasets import Dataset
from initlab.bench.sweep.ensemble import (
    RANDOM_FORWARD,
    accuracies,
    clip_,
    log_every,
    member_loss,
    member_views,
    optimizer_state,
    result_row,
    training_targets,
    update_,
)
from initlab.bench.sweep.spec import Config, SweepSpec
from initlab.bench.train import DTYPES, targets


def train_loop(models: Sequence[nn.Module], configs: Sequence[Config], dataset: Dataset,
               spec: SweepSpec) -> list[dict[str, Any]]:  # fmt: skip
    """Train each of ``models`` with its config's optimizer and ``lr``; one metrics dict per
    member (the vmap engine's :func:`.ensemble.result_row`).

    Every member computes on one intra-op thread, and the members are spread over as many
    Python threads as torch had intra-op threads (the ops release the GIL). A convolution's
    weight gradient sums over the batch in per-thread parts, so its bits depend on the thread
    count: with one thread per member, a member's numbers are the same on 2 local threads and
    in a one-CPU Ray task."""
    if not models:
        return []
    _refuse_random_forward(models[0], dataset, spec)
    workers = torch.get_num_threads()
    results: list[dict[str, Any]] = [{} for _ in models]

    def train(b: int) -> None:
        results[b] = train_member(models[b], configs[b], dataset, spec)

    with few_threads(1):
        parallel_map(train, list(range(len(models))), workers=workers)
    return results


def _refuse_random_forward(model: nn.Module, dataset: Dataset, spec: SweepSpec) -> None:
    """One training-mode forward of a copy, with the global RNG forked: if it drew random
    numbers (dropout), refuse the sweep as the vmap engine does."""
    probe = copy.deepcopy(model)
    probe.train()
    x = dataset.x_train[:2].to(DTYPES[spec.dtype])
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        before = torch.random.get_rng_state()
        probe(x)
        drew = not torch.equal(before, torch.random.get_rng_state())
    if drew:
        raise ValueError(RANDOM_FORWARD)


def train_member(model: nn.Module, config: Config, dataset: Dataset,
                 spec: SweepSpec) -> dict[str, Any]:  # fmt: skip
    """``spec.iterations`` full-batch steps of one member, then its final and test metrics."""
    from torch.func import replace_all_batch_norm_modules_

    replace_all_batch_norm_modules_(model)
    x, t, output, n_out = training_targets(model, dataset, spec)
    # Every parameter trains, as in the vmap engine (whose gradient covers all of them).
    params = [p.requires_grad_(True) for p in model.parameters()]
    batch_of_one = [p.detach().unsqueeze(0) for p in params]  # views: updates reach the model
    state = optimizer_state(config["optimizer"], batch_of_one)
    neg_lr = -torch.tensor([float(config["lr"])], dtype=x.dtype)
    neg_lr_views = member_views(neg_lr, batch_of_one)
    every = log_every(spec)
    initial = best = math.inf
    for it in range(spec.iterations):
        loss, grads = _loss_and_grads(model, params, output, x, t)
        value = float(loss)
        if not math.isfinite(value):
            # initial and best stay inf when never logged: result_row writes None
            return result_row("diverged", it, initial, None, best, None, None, None)
        if it % every == 0:
            initial = value if it == 0 else initial
            best = min(best, value)
        with torch.no_grad():
            grads = [g.unsqueeze(0) for g in grads]
            clip_(grads, spec)
            update_(config["optimizer"], batch_of_one, state, grads, neg_lr, neg_lr_views, spec,
                    it + 1)  # fmt: skip
    return _finish(model, output, n_out, x, t, dataset, spec, initial, best)


def _loss_and_grads(
    model: nn.Module, params: list[torch.Tensor], output: str, x: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The full-batch training loss and its gradients (zeros for unused parameters)."""
    with torch.enable_grad():
        loss = member_loss(output, model(x), t)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = tuple(
        torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)
    )
    return loss.detach(), grads


def _finish(
    model: nn.Module, output: str, n_out: int, x: torch.Tensor, t: torch.Tensor,
    dataset: Dataset, spec: SweepSpec, initial: float, best: float,
) -> dict[str, Any]:  # fmt: skip
    """Final training loss and accuracy (a non-finite final loss: diverged at
    ``iterations``), best loss, test loss and accuracy."""
    with torch.no_grad():
        logits = model(x)
        final = float(member_loss(output, logits, t))
        if not math.isfinite(final):
            return result_row("diverged", spec.iterations, initial, None, best, None, None,
                              None)  # fmt: skip
        best = min(best, final)
        train_acc = accuracies(output, logits.unsqueeze(0), dataset.y_train)[0]
        test_loss = test_acc = None
        if dataset.x_test.shape[0] > 0:
            z = model(dataset.x_test.to(x.dtype))
            t_test = targets(output, dataset.y_test, n_out, x.dtype)
            test_loss = float(member_loss(output, z, t_test))
            test_acc = accuracies(output, z.unsqueeze(0), dataset.y_test)[0]
    return result_row("finished", None, initial, final, best, train_acc, test_loss, test_acc)


__all__ = ["train_loop", "train_member"]
