"""The batched engine: one chunk of same-architecture configs trained as one ensemble.

Every member of a chunk is built and initialized on its own (its module built with torch's RNG
seeded by its ``init_seed``, then :func:`initlab.init_model` with its scheme and seed, then
every weight times ``sqrt(scale)``), so a member's weights do not depend on the chunk.

Two engines, same math (:mod:`initlab.bench.train`'s: loss from logits, full-batch steps, clip
by global norm then by value, ``gd``/``momentum``/``adam``):

- ``vmap``, for any ``nn.Module``: ``torch.func.stack_module_state`` stacks the members'
  parameters along a member dimension; ``vmap(grad_and_value(loss of functional_call))``
  gives every member's gradient and loss in one call; functional optimizers update the stacked
  tensors in place with ``torch._foreach`` ops and a per-member learning rate. BatchNorm layers
  normalize with batch statistics and keep no running statistics (``replace_all_batch_norm_
  modules_``); dropout is refused (its masks would depend on the batch composition).
- ``stacked``, for the built-in MLP with relu, leaky_relu, tanh, sigmoid or linear hidden
  layers: :func:`initlab.train_stacked`'s hand-fused forward/backward (faster on small nets;
  ``benchmarks/sweep_speed.py`` measures both).

Divergence: the first iteration whose training loss is NaN or Inf ends that member (status
``diverged``, ``diverged_at`` that iteration); its parameters and optimizer state are zeroed and
its learning rate set to 0, so it cannot poison the others. ``best_loss``: the lowest training
loss at the logged iterations ``0, k, 2k, ..., iterations``.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab._core.rng import seeded_global_rng
from initlab.bench.datasets import Dataset
from initlab.bench.sweep.spec import Config, SweepSpec, config_id, init_seed
from initlab.bench.train import DTYPES, accuracy, few_threads, loss_from_logits, targets

FAST_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
FACTORY_ARGUMENTS = ("depth", "width", "activation", "in_features", "out_features")


@dataclass
class Chunk:
    """One unit of work: configs that share an architecture, data and optimizer."""

    index: int
    configs: list[Config]
    spec: SweepSpec
    datasets: dict[str, Dataset]
    engine: str
    threads: int | None = None


# ---------------------------------------------------------------------------- members
def out_features(dataset: Dataset) -> int:
    """1 output for two classes, else one per class."""
    n = max(int(dataset.n_classes), 2)
    return 1 if n == 2 else n


def factory_kwargs(spec: SweepSpec, config: Mapping[str, Any], dataset: Dataset,
                   factory: Callable[..., Any]) -> dict[str, Any]:  # fmt: skip
    """The keyword arguments a model factory gets: the swept architecture axes (it must take
    them) and ``in_features``/``out_features`` when its signature names them."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    available = {"depth": config["depth"], "width": config["width"],
                 "activation": config["activation"], "in_features": dataset.n_features,
                 "out_features": out_features(dataset)}  # fmt: skip
    kwargs = {}
    for name in FACTORY_ARGUMENTS:
        swept = name in spec.axes
        if name in parameters or (var_kw and swept):
            kwargs[name] = available[name]
        elif swept:
            raise TypeError(
                f"the sweep varies {name!r} but model factory {_name(factory)}() takes no "
                f"{name!r} argument (its parameters: {', '.join(parameters) or 'none'})"
            )
    return kwargs


def _name(factory: Any) -> str:
    return getattr(factory, "__qualname__", type(factory).__name__)


def layer_dims(spec: SweepSpec, config: Mapping[str, Any], dataset: Dataset) -> list[int]:
    """The built-in MLP's sizes: fixed ``layer_dims`` or ``[features] + [width] * depth +
    [outputs]``."""
    if spec.layer_dims is not None:
        if spec.layer_dims[0] != dataset.n_features:
            raise ValueError(
                f"layer_dims starts with {spec.layer_dims[0]} inputs but dataset "
                f"{dataset.name!r} has {dataset.n_features} features"
            )
        return list(spec.layer_dims)
    return (
        [dataset.n_features]
        + [int(config["width"])] * int(config["depth"])
        + [out_features(dataset)]
    )


def build_member(spec: SweepSpec, config: Mapping[str, Any], dataset: Dataset) -> nn.Module:
    """Config ``config``'s model with its initial weights (see the module docstring)."""
    from initlab.bench.nets import mlp
    from initlab.initializers.apply import init_model

    seed = init_seed(spec.sweep_seed, config, spec.model)
    dtype = DTYPES[spec.dtype]
    with seeded_global_rng(seed):
        if spec.model is None:
            model = mlp(layer_dims(spec, config, dataset), config["activation"],
                        _output(spec, out_features(dataset)))  # fmt: skip
        else:
            factory = spec.model
            kwargs = factory_kwargs(spec, config, dataset, factory)  # type: ignore[arg-type]
            try:
                model = factory(**kwargs)  # type: ignore[operator]
            except Exception as error:
                raise ValueError(
                    f"model factory {_name(factory)}({_kw(kwargs)}) failed: "
                    f"{type(error).__name__}: {error}"
                ) from None
            if not isinstance(model, nn.Module):
                raise TypeError(
                    f"model factory {_name(factory)}() returned {type(model).__name__}, not an "
                    f"nn.Module"
                )
    model.to(dtype)
    init_model(model, config["scheme"], seed=seed)
    factor = math.sqrt(float(config["scale"]))
    if factor != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() >= 2:
                    p.mul_(factor)
    return model


def _kw(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _output(spec: SweepSpec, n_out: int) -> str:
    return spec.output or ("sigmoid" if n_out == 1 else "softmax")


def prior_loss(output: str, dataset: Dataset) -> float:
    """The loss of the best constant prediction (class frequencies): what "learned nothing"
    scores. ``sigmoid``/``softmax``: the entropy of the training labels; ``linear``: their
    variance around the best constant for each output."""
    y = dataset.y_train.long()
    counts = torch.bincount(y, minlength=max(int(dataset.n_classes), 2)).double()
    p = counts / counts.sum()
    if output == "linear":
        n_out = out_features(dataset)
        if n_out == 1:
            return float(y.double().var(unbiased=False))
        return float((p * (1 - p)).mean())
    p = p[p > 0]
    entropy = float(-(p * p.log()).sum())
    if output == "sigmoid" and int(dataset.n_classes) > 2:
        return float("nan")
    return entropy


# ---------------------------------------------------------------------------- run a chunk
def run_chunk(chunk: Chunk) -> list[dict[str, Any]]:
    """Train every config of ``chunk`` together; one result row per config (config order)."""
    start = time.perf_counter()
    spec, configs = chunk.spec, chunk.configs
    dataset = chunk.datasets[configs[0]["data"]]
    with few_threads(chunk.threads):
        models = [build_member(spec, c, dataset) for c in configs]
        if chunk.engine == "stacked":
            metrics = _train_stacked(models, configs, dataset, spec)
        else:
            metrics = train_ensemble(models, configs, dataset, spec)
    seconds = (time.perf_counter() - start) / len(configs)
    rows = []
    output = _output(spec, out_features(dataset))
    prior = prior_loss(output, dataset)
    for config, m in zip(configs, metrics, strict=True):
        rows.append({"config_id": config_id(config), **config,
                     "init_seed": init_seed(spec.sweep_seed, config, spec.model),
                     "engine": chunk.engine, "members": len(configs), **m,
                     "prior_loss": prior, "seconds": seconds})  # fmt: skip
    return rows


def _log_every(spec: SweepSpec) -> int:
    return spec.log_every or max(1, spec.iterations // 100)


def _result(status: str, diverged_at: int | None, initial: float | None, final: float | None,
            best: float | None, train_acc: float | None, test_loss: float | None,
            test_acc: float | None) -> dict[str, Any]:  # fmt: skip
    def clean(v: float | None) -> float | None:
        return None if v is None or not math.isfinite(v) else float(v)

    return {"status": status, "diverged_at": diverged_at, "initial_loss": clean(initial),
            "final_loss": clean(final), "best_loss": clean(best),
            "train_accuracy": clean(train_acc), "test_loss": clean(test_loss),
            "test_accuracy": clean(test_acc)}  # fmt: skip


# ---------------------------------------------------------------------------- stacked MLP
def _train_stacked(models: Sequence[nn.Module], configs: Sequence[Config], dataset: Dataset,
                   spec: SweepSpec) -> list[dict[str, Any]]:  # fmt: skip
    from initlab.bench.nets import StackedMLP
    from initlab.bench.train import train_stacked

    stacked = StackedMLP.from_models(models)  # type: ignore[arg-type]
    lr = float(configs[0]["lr"])
    runs = train_stacked(stacked, dataset, labels=[config_id(c) for c in configs],
                         seeds=[init_seed(spec.sweep_seed, c, spec.model) for c in configs],
                         optimizer=configs[0]["optimizer"], lr=lr,
                         iterations=spec.iterations, clip_norm=spec.clip_norm,
                         clip_value=spec.clip_value, momentum=spec.momentum, betas=spec.betas,
                         eps=spec.eps, log_every=_log_every(spec))  # fmt: skip
    dtype = DTYPES[spec.dtype]
    output = stacked.output
    out = []
    has_test = dataset.x_test.shape[0] > 0
    x_test = dataset.x_test.to(dtype)
    n_out = stacked.layer_dims[-1]
    for run in runs:
        losses = run.history.loss
        initial = losses[0] if losses else None
        best = min(losses) if losses else None
        if run.status == "diverged":
            out.append(_result("diverged", run.diverged_at, initial, None, best, None, None, None))
            continue
        test_loss = None
        if has_test and run.model is not None:
            with torch.no_grad():
                z = run.model(x_test)
                t = targets(output, dataset.y_test, n_out, dtype)
                test_loss = float(loss_from_logits(output, z, t))
        out.append(_result("finished", None, initial, run.final_loss, best,
                           run.train_accuracy, test_loss, run.test_accuracy))  # fmt: skip
    return out


# ---------------------------------------------------------------------------- vmap ensemble
def member_loss(output: str, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """:func:`initlab.bench.train.loss_from_logits` in ops that vmap batches natively
    (``binary_cross_entropy_with_logits`` has no batching rule: under vmap it loops over the
    members, 60 ms a call). Exact for saturated logits: ``softplus(z) = logaddexp(z, 0)``."""
    if output == "sigmoid":
        return (torch.logaddexp(z, torch.zeros_like(z)) - t * z).mean()
    if output == "softmax":
        return (torch.logsumexp(z, -1) - z.gather(-1, t.unsqueeze(-1)).squeeze(-1)).mean()
    return (z - t).pow(2).mean()


def _views(values: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``values`` (B,) viewed to broadcast against each stacked tensor (B, ...)."""
    return [values.view(-1, *([1] * (t.dim() - 1))) for t in like]


def train_ensemble(models: Sequence[nn.Module], configs: Sequence[Config], dataset: Dataset,
                   spec: SweepSpec) -> list[dict[str, Any]]:  # fmt: skip
    """Train ``models`` (same architecture, their own initial weights) as one vmapped
    ensemble with each config's ``lr``; returns one metrics dict per member."""
    from torch.func import (
        functional_call,
        grad_and_value,
        replace_all_batch_norm_modules_,
        stack_module_state,
        vmap,
    )

    if len(models) == 1:
        # A batch of one takes other kernels (vmap squeezes it to plain matmuls, whose rounding
        # differs from the batched ones): train a twin alongside so that a member's numbers do
        # not depend on the size of its chunk.
        twin = copy.deepcopy(models[0])
        return train_ensemble([models[0], twin], [configs[0], configs[0]], dataset, spec)[:1]
    optimizers = {c["optimizer"] for c in configs}
    if len(optimizers) != 1:
        raise ValueError(f"one ensemble trains with one optimizer; got {sorted(optimizers)}")
    optimizer = optimizers.pop()
    dtype = DTYPES[spec.dtype]
    members = len(models)
    for m in models:
        replace_all_batch_norm_modules_(m)
        m.train()
    base = copy.deepcopy(models[0])
    params, buffers = stack_module_state(list(models))
    names = list(params)
    plist = [params[k].detach() for k in names]
    params = dict(zip(names, plist, strict=True))
    buffers = {k: v.detach() for k, v in buffers.items()}
    x = dataset.x_train.to(dtype)
    y = dataset.y_train
    models[0].eval()  # no dropout draws from the global RNG while probing the output size
    with torch.no_grad():
        n_out = int(models[0](x[:1]).shape[-1])
    models[0].train()
    output = _output(spec, n_out)
    t = targets(output, y, n_out, dtype)

    def loss_of(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor,
                tb: torch.Tensor) -> torch.Tensor:  # fmt: skip
        return member_loss(output, functional_call(base, (p, b), (xb,)), tb)

    def logits_of(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                  xb: torch.Tensor) -> torch.Tensor:  # fmt: skip
        return functional_call(base, (p, b), (xb,))

    # Inputs and targets are expanded (stride 0, no copy) so that every product is a batched
    # per-member matmul (bmm): a member's numbers then do not depend on how many members share
    # the chunk. An unbatched x would fold the members into one wide matmul, whose rounding
    # can change with its width.
    step = vmap(grad_and_value(loss_of), in_dims=(0, 0, 0, 0))
    forward = vmap(logits_of, in_dims=(0, 0, 0))
    x_b = x.expand(members, *x.shape)
    t_b = t.expand(members, *t.shape)
    lr = torch.tensor([float(c["lr"]) for c in configs], dtype=dtype)
    neg_lr = -lr
    neg_lr_views = _views(neg_lr, plist)
    alive = torch.ones(members, dtype=torch.bool)
    dead_views = None
    state: list[torch.Tensor] = []
    if optimizer == "momentum":
        state = [torch.zeros_like(p) for p in plist]
    elif optimizer == "adam":
        state = [torch.zeros_like(p) for p in plist * 2]
    b1, b2 = spec.betas
    log_every = _log_every(spec)
    inf = torch.full((members,), math.inf, dtype=dtype)
    best = inf.clone()
    initial = inf.clone()
    diverged_at: list[int | None] = [None] * members
    iterations = spec.iterations

    def kill(bad: torch.Tensor, iteration: int) -> None:
        nonlocal dead_views
        for b in bad.nonzero().flatten().tolist():
            diverged_at[b] = iteration
        alive.logical_and_(~bad)
        neg_lr.masked_fill_(bad, 0.0)
        for tensor in (*plist, *state):
            tensor[bad] = 0
        dead_views = _views(~alive, plist)

    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Ops without a vmap rule (CPU flash attention, ...) run member by member: slower,
            # still right. PyTorch warns on each call; the sweep docs say so once.
            warnings.filterwarnings("ignore", message="There is a performance drop")
            for it in range(iterations):
                grads_d, loss = step(params, buffers, x_b, t_b)
                finite = torch.isfinite(loss)
                if not bool(finite.all()):
                    bad = alive & ~finite
                    if bool(bad.any()):
                        kill(bad, it)
                grads = [grads_d[k] for k in names]
                if dead_views is not None:
                    for g, dead in zip(grads, dead_views, strict=True):
                        g.masked_fill_(dead, 0.0)
                if it % log_every == 0:
                    if it == 0:
                        initial = torch.where(finite, loss, initial)
                    best = torch.where(alive & (loss < best), loss, best)
                _clip(grads, spec)
                _update(optimizer, plist, grads, state, neg_lr_views, spec, it + 1, b1, b2)
            logits = forward(params, buffers, x_b)
            loss = torch.stack([member_loss(output, z, t) for z in logits])
    except RuntimeError as error:
        if "randomness" in str(error):
            raise ValueError(
                "the swept model draws random numbers in forward (dropout?): sweeps train "
                "without them, since a member's masks would depend on its chunk"
            ) from None
        raise
    finite = torch.isfinite(loss)
    bad = alive & ~finite
    if bool(bad.any()):
        kill(bad, iterations)
    best = torch.where(alive & (loss < best), loss, best)
    results = []
    has_test = dataset.x_test.shape[0] > 0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop")
        x_test = dataset.x_test.to(dtype)
        test_logits = (forward(params, buffers, x_test.expand(members, *x_test.shape))
                       if has_test else None)  # fmt: skip
        t_test = targets(output, dataset.y_test, n_out, dtype) if has_test else None
    for b in range(members):
        first = float(initial[b])
        best_b = float(best[b]) if math.isfinite(float(best[b])) else None
        if not bool(alive[b]):
            results.append(_result("diverged", diverged_at[b], first, None, best_b, None, None,
                                   None))  # fmt: skip
            continue
        train_acc = accuracy(output, logits[b], y)
        test_loss = test_acc = None
        if test_logits is not None:
            test_loss = float(member_loss(output, test_logits[b], t_test))
            test_acc = accuracy(output, test_logits[b], dataset.y_test)
        results.append(_result("finished", None, first, float(loss[b]), best_b, train_acc,
                               test_loss, test_acc))  # fmt: skip
    return results


def _clip(grads: list[torch.Tensor], spec: SweepSpec) -> None:
    from initlab.bench import clip

    if spec.clip_norm is not None:
        clip.clip_by_norm_(grads, spec.clip_norm, batched=True)
    if spec.clip_value is not None:
        clip.clip_by_value_(grads, spec.clip_value)


def _update(optimizer: str, params: list[torch.Tensor], grads: list[torch.Tensor],
            state: list[torch.Tensor], neg_lr: list[torch.Tensor], spec: SweepSpec, t: int,
            b1: float, b2: float) -> None:  # fmt: skip
    """One step of ``initlab.train``'s optimizers with a per-member learning rate."""
    if optimizer == "gd":
        torch._foreach_addcmul_(params, grads, neg_lr)
    elif optimizer == "momentum":
        torch._foreach_mul_(state, spec.momentum)
        torch._foreach_add_(state, grads)
        torch._foreach_addcmul_(params, state, neg_lr)
    else:
        n = len(params)
        m, v = state[:n], state[n:]
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(1 - b2**t))
        torch._foreach_add_(denom, spec.eps)
        step = torch._foreach_div(m, denom)
        factor = neg_lr[0] / (1 - b1**t)  # (B,): -lr / (1 - b1^t), as initlab.train's addcdiv
        torch._foreach_addcmul_(params, step, _views(factor, params))


__all__ = ["Chunk", "build_member", "run_chunk", "train_ensemble"]
