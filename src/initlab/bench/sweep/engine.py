"""The batched engine: one chunk of same-architecture configs trained as one ensemble.

Every member of a chunk is built and initialized on its own (its module built with torch's RNG
seeded by its ``init_seed``, then :func:`initlab.init_model` with its scheme and seed, then
every weight times ``sqrt(scale)``), so a member's weights do not depend on the chunk.

Three engines, same math (:mod:`initlab.bench.train`'s: loss from logits, full-batch steps, clip
by global norm then by value, ``gd``/``momentum``/``adam``):

- ``vmap`` (:mod:`.ensemble`), for any ``nn.Module``: ``torch.func.stack_module_state``
  stacks the members' parameters along a member dimension; ``vmap(grad_and_value(loss of
  functional_call))`` gives every member's gradient and loss in one call; functional
  optimizers update the stacked tensors in place with ``torch._foreach`` ops and a
  per-member learning rate. BatchNorm layers
  normalize with batch statistics and keep no running statistics (``replace_all_batch_norm_
  modules_``); dropout is refused (its masks would depend on the batch composition).
- ``loop`` (:mod:`.loop`), for any ``nn.Module``: each member on its own with plain autograd
  and the vmap engine's clipping and optimizer step; ``auto`` picks it for models with
  convolutions, which vmap turns into slow grouped convolutions on the CPU.
- ``stacked``, for the built-in MLP with relu, leaky_relu, tanh, sigmoid or linear hidden
  layers: :func:`initlab.train_stacked`'s hand-fused forward/backward (faster on small nets;
  ``benchmarks/sweep_speed.py`` measures both).

Divergence: the first iteration whose training loss is NaN or Inf ends that member (status
``diverged``, ``diverged_at`` that iteration); its parameters and optimizer state are zeroed and
its learning rate set to 0, so it cannot poison the others (the vmap engine checks every
:data:`.ensemble.CHECK_EVERY` steps, recording the first bad iteration on the tensors).
``best_loss``: the lowest training loss at the logged iterations ``0, k, 2k, ..., iterations``.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab._core.rng import seeded_global_rng
from initlab.bench.datasets import Dataset
from initlab.bench.sweep.ensemble import (
    log_every,
    member_loss,
    output_kind,
    result_row,
    train_ensemble,
)
from initlab.bench.sweep.loop import train_loop
from initlab.bench.sweep.spec import Config, SweepSpec, config_id, init_seed
from initlab.bench.train import DTYPES, few_threads, loss_from_logits, targets

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
                        output_kind(spec, out_features(dataset)))  # fmt: skip
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
        elif chunk.engine == "loop":
            metrics = train_loop(models, configs, dataset, spec)
        else:
            metrics = train_ensemble(models, configs, dataset, spec)
    seconds = (time.perf_counter() - start) / len(configs)
    rows = []
    output = output_kind(spec, out_features(dataset))
    prior = prior_loss(output, dataset)
    for config, m in zip(configs, metrics, strict=True):
        rows.append({"config_id": config_id(config), **config,
                     "init_seed": init_seed(spec.sweep_seed, config, spec.model),
                     "engine": chunk.engine, "members": len(configs), **m,
                     "prior_loss": prior, "seconds": seconds})  # fmt: skip
    return rows


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
                         eps=spec.eps, log_every=log_every(spec))  # fmt: skip
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
            out.append(result_row("diverged", run.diverged_at, initial, None, best, None, None,
                                  None))  # fmt: skip
            continue
        test_loss = None
        if has_test and run.model is not None:
            with torch.no_grad():
                z = run.model(x_test)
                t = targets(output, dataset.y_test, n_out, dtype)
                test_loss = float(loss_from_logits(output, z, t))
        out.append(result_row("finished", None, initial, run.final_loss, best,
                           run.train_accuracy, test_loss, run.test_accuracy))  # fmt: skip
    return out


__all__ = ["Chunk", "build_member", "member_loss", "run_chunk", "train_ensemble"]
