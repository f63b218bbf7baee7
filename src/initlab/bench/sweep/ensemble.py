"""The ``vmap`` engine: same-architecture members trained as one vectorized ensemble.

``torch.func.stack_module_state`` stacks the members' parameters along a leading member
dimension ``B``; ``vmap(grad_and_value(loss of functional_call))`` gives every member's
gradient ``(B, *shape)`` and loss ``(B,)`` in one call; the optimizers update the stacked
tensors in place with ``torch._foreach`` ops and a per-member learning rate ``lr`` ``(B,)``.

The steps, one function each: :func:`prepare` (stack, probe the output, targets),
:func:`train_steps` (the loop), :func:`finish` (final and test metrics, one row per member).

Inputs and targets are expanded to ``(B, N, ...)`` (stride 0, no copy) so that every product
is a per-member batched matmul or grouped convolution: a member's numbers then do not depend on
which or how many members share its chunk. (An unbatched ``x`` would let vmap fold the members
into one wide matmul, whose rounding changes with its width in float64. Measured on 2 cores,
that fold is not faster here: 0.97x the expanded form on the digits MLP, 0.81x on the small
CNN; see ``docs/guide/sweeps.md``.)

Divergence without a host sync per step: each step records, on the tensors, the first
iteration whose training loss is NaN or Inf; every :data:`CHECK_EVERY` steps (and at the end)
those members are ended: parameters and optimizer state zeroed, learning rate 0. Between a
member's first bad step and the check its values are garbage, but only its own: every op of
the ensemble is per member (batched matmuls, grouped convolutions, per-member norms), so it
cannot poison the others, and its ``diverged_at`` is the first bad iteration all the same.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.bench.datasets import Dataset
from initlab.bench.sweep.spec import Config, SweepSpec
from initlab.bench.train import DTYPES, targets

CHECK_EVERY = 16  # steps between divergence checks (the only host reads of the loop)
RANDOM_FORWARD = (
    "the swept model draws random numbers in forward (dropout?): sweeps train without them, "
    "since a member's masks would depend on its chunk"
)
_STATE_COPIES = {"gd": 0, "momentum": 1, "adam": 2}  # optimizer state tensors per parameter


def output_kind(spec: SweepSpec, n_out: int) -> str:
    """The loss's output: ``spec.output``, else sigmoid for 1 output and softmax for more."""
    return spec.output or ("sigmoid" if n_out == 1 else "softmax")


def log_every(spec: SweepSpec) -> int:
    """Iterations between the logged losses that ``best_loss`` is the minimum of."""
    return spec.log_every or max(1, spec.iterations // 100)


def result_row(status: str, diverged_at: int | None, initial: float | None,
               final: float | None, best: float | None, train_acc: float | None,
               test_loss: float | None, test_acc: float | None) -> dict[str, Any]:  # fmt: skip
    """One member's metrics (non-finite values as ``None``)."""

    def clean(v: float | None) -> float | None:
        return None if v is None or not math.isfinite(v) else float(v)

    return {"status": status, "diverged_at": diverged_at, "initial_loss": clean(initial),
            "final_loss": clean(final), "best_loss": clean(best),
            "train_accuracy": clean(train_acc), "test_loss": clean(test_loss),
            "test_accuracy": clean(test_acc)}  # fmt: skip


def member_loss(output: str, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """:func:`initlab.bench.train.loss_from_logits` in ops that vmap batches natively
    (``binary_cross_entropy_with_logits`` has no batching rule: under vmap it loops over the
    members, 60 ms a call). Exact for saturated logits: ``softplus(z) = logaddexp(z, 0)``."""
    if output == "sigmoid":
        return (torch.logaddexp(z, torch.zeros_like(z)) - t * z).mean()
    if output == "softmax":
        return (torch.logsumexp(z, -1) - z.gather(-1, t.unsqueeze(-1)).squeeze(-1)).mean()
    return (z - t).pow(2).mean()


def member_views(values: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``values`` (B,) viewed to broadcast against each stacked tensor (B, ...)."""
    return [values.view(-1, *([1] * (t.dim() - 1))) for t in like]


def optimizer_state(optimizer: str, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Zeroed state for :func:`update_`: none (gd), velocities (momentum), m then v (adam)."""
    return [torch.zeros_like(p) for p in list(params) * _STATE_COPIES[optimizer]]


def training_targets(model: nn.Module, dataset: Dataset, spec: SweepSpec
                     ) -> tuple[torch.Tensor, torch.Tensor, str, int]:  # fmt: skip
    """The training inputs ``x`` in the spec's dtype, the targets, the output kind and the
    number of outputs (probed with one example, in eval mode: no dropout draw)."""
    dtype = DTYPES[spec.dtype]
    x = dataset.x_train.to(dtype)
    model.eval()
    with torch.no_grad():
        n_out = int(model(x[:1]).shape[-1])
    model.train()
    output = output_kind(spec, n_out)
    return x, targets(output, dataset.y_train, n_out, dtype), output, n_out


@dataclass
class Ensemble:
    """Stacked members ready to train: ``params``/``state`` are ``(B, *shape)`` tensors
    updated in place; ``x``/``t`` the training inputs and targets expanded to ``(B, N, ...)``;
    ``step(params, buffers, x, t) -> (grads, loss (B,))``; ``forward(params, buffers, x)``
    gives logits ``(B, N, n_out)``."""

    base: nn.Module
    names: list[str]
    params: list[torch.Tensor]
    buffers: dict[str, torch.Tensor]
    state: list[torch.Tensor]
    optimizer: str
    output: str
    n_out: int
    x: torch.Tensor
    t: torch.Tensor
    neg_lr: torch.Tensor
    step: Callable[..., tuple[dict[str, torch.Tensor], torch.Tensor]]
    forward: Callable[..., torch.Tensor]

    @property
    def members(self) -> int:
        return int(self.neg_lr.shape[0])

    def as_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.params, strict=True))


@dataclass
class Track:
    """Per-member bookkeeping, all on tensors ``(B,)``: ``first_bad`` the first iteration
    with a non-finite loss (-1: none), ``ended`` members already zeroed, ``initial`` and
    ``best`` losses."""

    first_bad: torch.Tensor
    ended: torch.Tensor
    initial: torch.Tensor
    best: torch.Tensor


def prepare(models: Sequence[nn.Module], configs: Sequence[Config], dataset: Dataset,
            spec: SweepSpec) -> Ensemble:  # fmt: skip
    """Stack ``models`` (BatchNorm switched to batch statistics) and build the step."""
    from torch.func import (
        functional_call,
        grad_and_value,
        replace_all_batch_norm_modules_,
        stack_module_state,
        vmap,
    )

    optimizers = {c["optimizer"] for c in configs}
    if len(optimizers) != 1:
        raise ValueError(f"one ensemble trains with one optimizer; got {sorted(optimizers)}")
    dtype = DTYPES[spec.dtype]
    for m in models:
        replace_all_batch_norm_modules_(m)
        m.train()
    base = copy.deepcopy(models[0])
    stacked, buffers = stack_module_state(list(models))
    names = list(stacked)
    x, t, output, n_out = training_targets(models[0], dataset, spec)

    def logits_of(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                  xb: torch.Tensor) -> torch.Tensor:  # fmt: skip
        return functional_call(base, (p, b), (xb,))

    def loss_of(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor,
                tb: torch.Tensor) -> torch.Tensor:  # fmt: skip
        return member_loss(output, logits_of(p, b, xb), tb)

    params = [stacked[k].detach() for k in names]
    optimizer = optimizers.pop()
    members = len(models)
    return Ensemble(
        base, names, params, {k: v.detach() for k, v in buffers.items()},
        optimizer_state(optimizer, params), optimizer, output, n_out,
        x.expand(members, *x.shape), t.expand(members, *t.shape),
        -torch.tensor([float(c["lr"]) for c in configs], dtype=dtype),
        vmap(grad_and_value(loss_of)), vmap(logits_of),
    )  # fmt: skip


def end_diverged(ens: Ensemble, track: Track) -> None:
    """Zero the parameters and optimizer state of members that diverged since the last
    check and set their learning rate to 0 (one host read: are there any?)."""
    new = (track.first_bad >= 0) & ~track.ended
    if not bool(new.any()):
        return
    ens.neg_lr.masked_fill_(new, 0.0)
    for tensor in (*ens.params, *ens.state):
        tensor[new] = 0
    track.ended |= new


def train_steps(ens: Ensemble, spec: SweepSpec) -> Track:
    """``spec.iterations`` full-batch steps: gradient and loss of every member, record
    divergence and the logged losses on the tensors, clip, update."""
    members = ens.members
    dtype = ens.neg_lr.dtype
    inf = torch.full((members,), math.inf, dtype=dtype)
    track = Track(torch.full((members,), -1, dtype=torch.long),
                  torch.zeros(members, dtype=torch.bool), inf.clone(), inf.clone())  # fmt: skip
    neg_lr = member_views(ens.neg_lr, ens.params)
    every = log_every(spec)
    for it in range(spec.iterations):
        if it % CHECK_EVERY == 0 and it:
            end_diverged(ens, track)
        grads_d, loss = ens.step(ens.as_dict(), ens.buffers, ens.x, ens.t)
        healthy = track.first_bad < 0
        finite = torch.isfinite(loss)
        track.first_bad.masked_fill_(healthy & ~finite, it)
        if it % every == 0:
            if it == 0:
                track.initial = torch.where(finite, loss, track.initial)
            healthy &= finite
            track.best = torch.where(healthy & (loss < track.best), loss, track.best)
        grads = [grads_d[k] for k in ens.names]
        clip_(grads, spec)
        update_(ens.optimizer, ens.params, ens.state, grads, ens.neg_lr, neg_lr, spec, it + 1)
    end_diverged(ens, track)
    return track


def finish(ens: Ensemble, track: Track, dataset: Dataset, spec: SweepSpec) -> list[dict[str, Any]]:
    """Final training loss and accuracy (a member whose final loss is not finite diverged at
    ``iterations``), best loss, test loss and accuracy: one :func:`result_row` per member."""
    from torch.func import vmap

    def losses(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return vmap(lambda zb, tb: member_loss(ens.output, zb, tb))(z, t)

    members = ens.members
    logits = ens.forward(ens.as_dict(), ens.buffers, ens.x)
    loss = losses(logits, ens.t)
    healthy = track.first_bad < 0
    track.first_bad.masked_fill_(healthy & ~torch.isfinite(loss), spec.iterations)
    healthy = track.first_bad < 0
    best = torch.where(healthy & (loss < track.best), loss, track.best)
    train_acc = accuracies(ens.output, logits, dataset.y_train)
    test_loss = test_acc = [None] * members
    if dataset.x_test.shape[0] > 0:
        x_test = dataset.x_test.to(ens.x.dtype)
        z = ens.forward(ens.as_dict(), ens.buffers, x_test.expand(members, *x_test.shape))
        t = targets(ens.output, dataset.y_test, ens.n_out, ens.x.dtype)
        test_loss = losses(z, t.expand(members, *t.shape)).tolist()
        test_acc = accuracies(ens.output, z, dataset.y_test)
    results = []
    for b, (first, bad) in enumerate(zip(track.initial.tolist(), track.first_bad.tolist(),
                                         strict=True)):  # fmt: skip
        best_b = float(best[b]) if math.isfinite(float(best[b])) else None
        if bad >= 0:
            results.append(result_row("diverged", bad, first, None, best_b, None, None, None))
        else:
            results.append(result_row("finished", None, first, float(loss[b]), best_b,
                                      train_acc[b], test_loss[b], test_acc[b]))  # fmt: skip
    return results


def accuracies(output: str, z: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Per-member :func:`initlab.bench.losses.accuracy` of logits ``z`` (B, N, n_out)."""
    if z.shape[-1] == 1:
        predicted = (z[..., 0] > (0.5 if output == "linear" else 0.0)).long()
    else:
        predicted = z.argmax(-1)
    return (predicted == y).double().mean(-1).tolist()


def train_ensemble(models: Sequence[nn.Module], configs: Sequence[Config], dataset: Dataset,
                   spec: SweepSpec) -> list[dict[str, Any]]:  # fmt: skip
    """Train ``models`` (same architecture, their own initial weights) as vmapped ensembles
    with each config's ``lr``, in slices whose activations the allocator reuses
    (:mod:`.slices`); returns one metrics dict per member."""
    from initlab.bench.sweep.slices import slices_for

    parts = slices_for(models, dataset.x_train, DTYPES[spec.dtype])
    rows = []
    for part in parts:
        rows += _train_slice(list(models[part]), list(configs[part]), dataset, spec)
    return rows


def _train_slice(models: list[nn.Module], configs: list[Config], dataset: Dataset,
                 spec: SweepSpec) -> list[dict[str, Any]]:  # fmt: skip
    """Train ``models`` as one vmapped ensemble."""
    if len(models) == 1:
        # A batch of one takes other kernels (vmap squeezes it to plain matmuls, whose rounding
        # differs from the batched ones): train a twin alongside so that a member's numbers do
        # not depend on the size of its chunk.
        twin = copy.deepcopy(models[0])
        return _train_slice([models[0], twin], [configs[0], configs[0]], dataset, spec)[:1]
    ens = prepare(models, configs, dataset, spec)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Ops without a vmap rule (CPU flash attention, ...) run member by member: slower,
            # still right. PyTorch warns on each call; the sweep docs say so once.
            warnings.filterwarnings("ignore", message="There is a performance drop")
            track = train_steps(ens, spec)
            return finish(ens, track, dataset, spec)
    except RuntimeError as error:
        if "randomness" in str(error):
            raise ValueError(RANDOM_FORWARD) from None
        raise


def clip_(grads: list[torch.Tensor], spec: SweepSpec) -> None:
    """The spec's clipping, in place, per member: by global norm, then by value."""
    from initlab.bench import clip

    if spec.clip_norm is not None:
        clip.clip_by_norm_(grads, spec.clip_norm, batched=True)
    if spec.clip_value is not None:
        clip.clip_by_value_(grads, spec.clip_value)


def update_(optimizer: str, params: list[torch.Tensor], state: list[torch.Tensor],
            grads: list[torch.Tensor], neg_lr: torch.Tensor, neg_lr_views: list[torch.Tensor],
            spec: SweepSpec, t: int) -> None:  # fmt: skip
    """One step of ``initlab.train``'s optimizers with a per-member learning rate, as fused
    ``_foreach`` ops over the stacked tensors ``(B, *shape)``: ``gd``: ``w += -lr g``;
    ``momentum``: ``v = mu v + g``, ``w += -lr v``; ``adam``: ``m = lerp(m, g, 1 - b1)``,
    ``v = b2 v + (1 - b2) g^2``, ``w += -lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)``.
    ``neg_lr``: ``-lr`` per member ``(B,)``; ``neg_lr_views``: its views against ``params``
    (:func:`member_views`); ``state``: :func:`optimizer_state`'s layout."""
    if optimizer == "gd":
        torch._foreach_addcmul_(params, grads, neg_lr_views)
    elif optimizer == "momentum":
        torch._foreach_mul_(state, spec.momentum)
        torch._foreach_add_(state, grads)
        torch._foreach_addcmul_(params, state, neg_lr_views)
    else:
        b1, b2 = spec.betas
        n = len(params)
        m, v = state[:n], state[n:]
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(1 - b2**t))
        torch._foreach_add_(denom, spec.eps)
        step = torch._foreach_div(m, denom)
        factor = neg_lr / (1 - b1**t)  # (B,): -lr / (1 - b1^t), as initlab.train's addcdiv
        torch._foreach_addcmul_(params, step, member_views(factor, params))


__all__ = [
    "CHECK_EVERY", "RANDOM_FORWARD", "accuracies", "clip_", "member_loss", "member_views",
    "optimizer_state", "train_ensemble", "training_targets", "update_",
]  # fmt: skip
