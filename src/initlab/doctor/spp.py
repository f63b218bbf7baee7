"""Signal propagation plots for residual networks (Brock, De & Smith 2021, NF-ResNets).

On N(0, 1) inputs, at each residual addition ``x_out = skip + branch`` in execution order:

- average channel squared mean: ``mean_c( mean_{N,H,W}(x_out)^2 )``;
- average channel variance: ``mean_c( var_{N,H,W}(x_out) )``;
- residual (branch) average channel variance: the same on ``branch`` before the addition;
- and ``branch / skip`` variance ratio.

Channels are dim 1 of NCHW / NCL tensors and the last dim of token tensors ``(N, T, D)`` and
of ``(N, D)``. Residual additions are found by data flow (:mod:`initlab.initializers.residual`):
an addition whose operands went through different numbers of weight layers, so in-place
``out += identity`` after a downsample and ``x + attn(norm(x))`` are both found without
naming modules (timm's ``extract_spp_stats`` needs their names).

Verdict: a healthy residual network keeps the squared channel mean small next to the variance
(no mean shift) and the variance of the residual stream growing slowly; with BN-ReLU ResNets it
grows about linearly inside a stage and resets at the transition blocks, and unnormalized nets
without down-scaled branches explode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from initlab._core.rng import make_generator
from initlab._core.table import format_table
from initlab.initializers.model_calls import call_model
from initlab.initializers.residual import Flow

_WEIGHT_LAYERS = (nn.Linear, nn.Bilinear, nn.Embedding, nn.MultiheadAttention,
                  nn.modules.conv._ConvNd)  # fmt: skip

MEAN_SHIFT = 0.5  # squared channel mean above this fraction of the variance: a mean shift
GROWTH = 8.0  # residual stream variance growing more than this factor: exploding


@dataclass
class SPPBlock:
    index: int
    layer: str  # last weight layer of the branch
    avg_sq_channel_mean: float
    avg_channel_var: float
    residual_var: float
    branch_to_skip: float


@dataclass
class SPP:
    """Per residual block statistics, in execution order, and a verdict."""

    blocks: list[SPPBlock]
    input_var: float
    verdict: str
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "input_var": self.input_var,
            "verdict": self.verdict,
            "advice": list(self.advice),
            "blocks": [{k: clean(v) for k, v in b.__dict__.items()} for b in self.blocks],
        }

    def __str__(self) -> str:
        headers = ["block", "branch ends at", "avg ch sq mean", "avg ch var", "residual var",
                   "branch/skip"]  # fmt: skip
        rows = [(b.index, b.layer, b.avg_sq_channel_mean, b.avg_channel_var, b.residual_var,
                 b.branch_to_skip) for b in self.blocks]  # fmt: skip
        return "\n".join([format_table(headers, rows), f"verdict: {self.verdict}", *self.advice])


def _channel_stats(x: torch.Tensor) -> tuple[float, float]:
    x = x.detach().double()
    if x.dim() < 2:
        return float(x.mean() ** 2), float(x.var(correction=0))
    channel = 1 if x.dim() >= 4 else -1  # NCHW / NCDHW; tokens (N, T, D) and (N, D): last
    dims = [d for d in range(x.dim()) if d != channel % x.dim()]
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, correction=0)
    return float((mean**2).mean()), float(var.mean())


def spp(
    model: nn.Module,
    example_input: Any = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    batch: int = 32,
    seed: int | torch.Generator | None = 0,
) -> SPP:
    """Signal propagation statistics at every residual addition of ``model``.

    Give ``example_input`` (tensor, tuple or dict), or ``input_shape`` (one example, without
    the batch) for ``batch`` N(0, 1) inputs drawn from ``seed``. The model runs once in its
    current mode under ``no_grad``; its buffers (batch-norm running statistics) are restored.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if example_input is None:
        if input_shape is None:
            raise ValueError("spp needs example_input or input_shape")
        first = next((p for p in model.parameters() if p.is_floating_point()), None)
        dtype = first.dtype if first is not None else torch.float32
        device = first.device if first is not None else torch.device("cpu")
        generator = make_generator(seed if seed is not None else 0)
        example_input = torch.randn((batch, *input_shape), generator=generator, dtype=dtype)
        example_input = example_input.to(device)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _WEIGHT_LAYERS)]
    names = {id(m): n for n, m in layers}
    blocks: list[SPPBlock] = []

    def on_merge(layer: int | None, branch: torch.Tensor, skip: torch.Tensor) -> None:
        if layer is None:
            return None
        sq_mean, var = _channel_stats(branch + skip)
        _, branch_var = _channel_stats(branch)
        _, skip_var = _channel_stats(skip)
        blocks.append(SPPBlock(
            index=len(blocks) + 1, layer=order[layer], avg_sq_channel_mean=sq_mean,
            avg_channel_var=var, residual_var=branch_var,
            branch_to_skip=branch_var / skip_var if skip_var > 0 else math.inf,
        ))  # fmt: skip
        return None

    flow = Flow(on_merge)
    order: dict[int, str] = {}
    handles = []
    for index, (_, module) in enumerate(layers):

        def hook(mod: nn.Module, args: Any, output: Any, index: int = index) -> None:
            y = output[0] if isinstance(output, tuple) else output
            if not isinstance(y, torch.Tensor):
                return
            order.setdefault(index, names[id(mod)])
            tags = [flow.get(t) for t in tree_flatten(args)[0]]
            depth = max((t[1] for t in tags if t is not None), default=0) + 1
            flow.tag(y, (index, depth))

        handles.append(module.register_forward_hook(hook))
    for t in tree_flatten(example_input)[0]:
        if isinstance(t, torch.Tensor):
            flow.tag(t, (None, 0))
    buffers = {id(b): b.detach().clone() for b in model.buffers()}
    first_input = next(t for t in tree_flatten(example_input)[0] if isinstance(t, torch.Tensor))
    input_var = _channel_stats(first_input)[1] if first_input.is_floating_point() else 1.0
    try:
        with torch.no_grad(), flow:
            call_model(model, example_input)
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for b in model.buffers():
                if id(b) in buffers:
                    b.copy_(buffers[id(b)])
    verdict, advice = _verdict(blocks)
    return SPP(blocks=blocks, input_var=input_var, verdict=verdict, advice=advice)


def _verdict(blocks: list[SPPBlock]) -> tuple[str, list[str]]:
    """Growth of the stream's variance (peak over first block above :data:`GROWTH`:
    unhealthy); warnings for a mean shift that is still there at the last block (batch-norm
    ResNets build one up inside a stage and reset it at each transition block: not a finding)
    and for branches that dominate their skips at most blocks (the first block's skip is the
    stem's output, of any scale)."""
    if not blocks:
        return "no residual additions found: SPP applies to residual networks", []
    advice = []
    problems = []
    first, last = blocks[0].avg_channel_var, blocks[-1].avg_channel_var
    growth = last / first if first > 0 else math.inf
    peak = max(b.avg_channel_var for b in blocks) / first if first > 0 else math.inf
    shifted = [b for b in blocks if b.avg_sq_channel_mean > MEAN_SHIFT * b.avg_channel_var]
    if peak > GROWTH:
        problems.append(f"the residual stream's variance grows x{peak:.3g} over "
                        f"{len(blocks)} blocks")  # fmt: skip
        advice.append(
            "scale each residual branch down (branch variance ~ skip variance / L: zero-init "
            "the last norm's scale (SkipInit), a learnable alpha ~ 0.2 (NF-ResNets) or "
            "initlab.lsuv, which targets 1/sqrt(L) per branch)"
        )
    if shifted and shifted[-1] is blocks[-1]:
        problems.append(
            f"mean shift at {len(shifted)} blocks, the last included (squared channel mean > "
            f"{MEAN_SHIFT:g} x channel variance, first at block {shifted[0].index})"
        )
        advice.append("remove the mean shift of ReLU branches: scaled weight standardization "
                      "(NF-Nets) or a norm before the addition")  # fmt: skip
    ratios = [b.branch_to_skip for b in blocks]
    dominated = [r for r in ratios if r > 2.0]
    if 2 * len(dominated) > len(ratios):
        problems.append(f"branches dominate their skips at {len(dominated)} of {len(ratios)} "
                        f"blocks (branch/skip variance up to {max(ratios):.3g})")  # fmt: skip
    if problems and peak > GROWTH:
        return "unhealthy: " + "; ".join(problems), advice
    if problems:
        return (f"variance under control (x{peak:.3g} at most), with warnings: "
                + "; ".join(problems)), advice  # fmt: skip
    return (f"healthy: variance x{growth:.3g} from first to last block (peak x{peak:.3g}), "
            f"no lasting mean shift, branch/skip <= {max(ratios):.3g}"), advice  # fmt: skip
