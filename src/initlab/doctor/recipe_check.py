"""The doctor knows the recipe: observed signal scales against what an init recipe predicts.

For every linear layer (``nn.Linear``, Hugging Face ``Conv1D``) whose weight the recipe draws
with std ``s`` (fans from the logical shape):

- forward: ``rms(y) = s * sqrt(fan_in) * rms(x)`` (each output sums ``fan_in`` products of an
  independent weight with the input; biases start at zero);
- backward: ``rms(dL/dx) = s * sqrt(fan_out) * rms(dL/dy)`` for the gradient this layer sends
  back to its input (measured on a view of the input that only this layer reads). Not for
  query and key projections: their output gradients depend on each other's weights.

A ratio observed/predicted far from 1 means the weights do not follow the recipe (another init
ran after it, a checkpoint was loaded, the roles are wrong) or the layer's input is not what
the recipe assumes. The residual stream is checked block by block: its RMS after each block,
what the residual-writing projections add, and how the final variance compares with what
Megatron-style ``1/sqrt(2L)`` branch scaling would give (each branch's variance, at the
recipe's hidden std, divided by ``2L``).

``diagnose(model, x, recipe=...)`` can attach this: ``Diagnosis.recipe = recipe_check(model, x,
recipe)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from initlab._core.table import format_table
from initlab.initializers.model_calls import call_model
from initlab.initializers.recipes import plan
from initlab.initializers.roles import _block_of, _find_blocks, _first_tensor, _is_linear, roles

# Ratios observed/predicted outside [1/TOLERANCE, TOLERANCE] are flagged.
TOLERANCE = 1.5


@dataclass
class LayerCheck:
    """One linear layer: predicted and observed output and input-gradient RMS."""

    layer: str
    role: str
    block: int | None
    weight_std: float
    predicted_out: float | None = None
    observed_out: float | None = None
    predicted_grad: float | None = None
    observed_grad: float | None = None

    @property
    def out_ratio(self) -> float | None:
        return _ratio(self.observed_out, self.predicted_out)

    @property
    def grad_ratio(self) -> float | None:
        return _ratio(self.observed_grad, self.predicted_grad)

    @property
    def verdict(self) -> str:
        bad = [r for r in (self.out_ratio, self.grad_ratio)
               if r is not None and not 1 / TOLERANCE <= r <= TOLERANCE]  # fmt: skip
        return "off recipe" if bad else "as predicted"


def _ratio(observed: float | None, predicted: float | None) -> float | None:
    if observed is None or not predicted:
        return None
    return observed / predicted


@dataclass
class StreamRow:
    """The residual stream after one block: RMS, what its writers added, and growth."""

    stack: str
    block: int
    rms_out: float
    branch_rms: float | None
    reference_increment: float | None  # variance a 1/sqrt(2L)-scaled branch would add


@dataclass
class RecipeCheck:
    """Observed vs predicted scales under a recipe; ``str()`` is two tables and a summary."""

    recipe: str
    layers: list[LayerCheck] = field(default_factory=list)
    stream: list[StreamRow] = field(default_factory=list)
    stream_in_rms: dict[str, float] = field(default_factory=dict)

    @property
    def off_recipe(self) -> list[str]:
        return [c.layer for c in self.layers if c.verdict != "as predicted"]

    def growth(self, stack: str | None = None) -> dict[str, dict[str, float]]:
        """Per stack: ``observed`` final/initial stream variance and ``reference``, the same
        under 1/sqrt(2L) branch scaling."""
        result: dict[str, dict[str, float]] = {}
        for name, rms_in in self.stream_in_rms.items():
            rows = [r for r in self.stream if r.stack == name]
            if not rows or not rms_in or (stack is not None and name != stack):
                continue
            reference = rms_in**2 + sum(r.reference_increment or 0.0 for r in rows)
            result[name] = {
                "observed": rows[-1].rms_out ** 2 / rms_in**2,
                "reference": reference / rms_in**2,
            }
        return result

    def __str__(self) -> str:
        layers = format_table(
            ("layer", "role", "block", "weight std", "out pred", "out obs", "ratio",
             "grad pred", "grad obs", "ratio", "verdict"),
            [(c.layer, c.role, c.block, c.weight_std, c.predicted_out, c.observed_out,
              c.out_ratio, c.predicted_grad, c.observed_grad, c.grad_ratio, c.verdict)
             for c in self.layers],
        )  # fmt: skip
        stream = format_table(
            ("stack", "block", "stream rms", "branch rms", "1/sqrt(2L) branch var"),
            [(r.stack, r.block, r.rms_out, r.branch_rms, r.reference_increment)
             for r in self.stream],
        )  # fmt: skip
        lines = [f"recipe: {self.recipe}", layers, "", "residual stream:", stream]
        for name, g in self.growth().items():
            lines.append(
                f"{name}: stream variance grows x{g['observed']:.3g} over depth; with "
                f"1/sqrt(2L) branch scaling it would grow x{g['reference']:.3g}"
            )
        off = self.off_recipe
        lines.append(
            f"{len(off)} of {len(self.layers)} layers off the recipe's prediction "
            f"(ratio outside [{1 / TOLERANCE:.2f}, {TOLERANCE}])" + (f": {', '.join(off[:5])}"
                                                                   if off else "")
        )  # fmt: skip
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "layers": [asdict(c) | {"out_ratio": c.out_ratio, "grad_ratio": c.grad_ratio,
                                    "verdict": c.verdict} for c in self.layers],
            "stream": [asdict(r) for r in self.stream],
            "stream_in_rms": dict(self.stream_in_rms),
            "growth": self.growth(),
        }  # fmt: skip


def _rms(t: torch.Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


def recipe_check(
    model: nn.Module,
    example_input: Any,
    recipe: str,
    *,
    overrides: Mapping[str, str] | None = None,
    seed: int = 0,
    **options: float,
) -> RecipeCheck:
    """Run one forward and backward pass of ``model`` on ``example_input`` and compare each
    linear layer's output and input-gradient RMS with what ``recipe`` predicts, and the
    residual stream's growth with 1/sqrt(2L) branch scaling. The model is not changed
    (initialize it with ``init_model(model, recipe=...)`` first to check the recipe itself).

    The loss is ``sum(output * r)`` (``output.logits`` for Hugging Face models) with ``r`` a
    fixed N(0, 1) tensor drawn from ``seed``, so every output gets a gradient. The model runs in
    eval mode (no dropout, batch norms use their running statistics); training flags and the
    parameters' ``.grad`` are restored.

    Steps: the recipe's std per linear layer (:func:`_planned_stds`), hooks that record
    observed scales (:func:`_hooks`), the pass (:func:`_run`), predicted gradients, and the
    residual stream against ``1/sqrt(2L)`` (:func:`_stream_rows`).
    """
    table = roles(model, example_input, overrides)
    planned = plan(model, recipe, table=table, **options)
    named = dict(model.named_modules())
    blocks = _find_blocks(model)
    std_of, role_of, hidden_std = _planned_stds(planned, table, named, blocks)
    checks = {n: LayerCheck(n, *role_of[n], weight_std=std_of[n]) for n in std_of}
    fans = {n: (table[f"{n}.weight"].fan_in, table[f"{n}.weight"].fan_out) for n in std_of}
    grads_out: dict[str, float] = {}
    stream_out: dict[str, float] = {}
    stream_in: dict[str, float] = {}
    handles = _hooks(named, checks, fans, blocks, grads_out, stream_in, stream_out)
    _run(model, named, example_input, seed, handles)
    for name, check in checks.items():
        # Query and key gradients depend on each other's weights (dL/dq reads k = W_k x), so
        # the independence the backward prediction assumes does not hold for them.
        if name in grads_out and check.role not in ("attn_qkv", "attn_q", "attn_k"):
            check.predicted_grad = check.weight_std * math.sqrt(fans[name][1]) * grads_out[name]
    result = RecipeCheck(planned.recipe, list(checks.values()), stream_in_rms=stream_in)
    result.stream.extend(_stream_rows(blocks, checks, hidden_std, stream_out))
    return result


def _planned_stds(
    planned: Any, table: Any, named: dict[str, nn.Module], blocks: dict[str, tuple[str, int]]
) -> tuple[dict[str, float], dict[str, tuple[str, int | None]], dict[str, float]]:
    """Per linear layer the recipe's weight std (gate chunks pooled: ``sqrt(sum n_i s_i^2 /
    sum n_i)``) and role, and per stack of blocks the std of its hidden (input-side) layers."""
    std_of: dict[str, float] = {}
    role_of: dict[str, tuple[str, int | None]] = {}
    hidden_std: dict[str, float] = {}
    by_param: dict[str, list] = {}
    for p in planned.rows:
        by_param.setdefault(p.parameter, []).append(p)
    for name, rows in by_param.items():
        module_name, _, leaf = name.rpartition(".")
        if leaf != "weight" or not _is_linear(named.get(module_name, nn.Identity())):
            continue
        if any(r.dist in ("keep", "tied") or r.target_std is None for r in rows):
            continue
        sizes = [1 if r.chunk is None else r.chunk[2] - r.chunk[1] for r in rows]
        var = sum(s * r.target_std**2 for s, r in zip(sizes, rows, strict=True)) / sum(sizes)
        std_of[module_name] = math.sqrt(var)
        role = table[name].role
        role_of[module_name] = (role, rows[0].block)
        if role in ("attn_qkv", "attn_q", "mlp_in", "mlp_gate", "mlp_up") and rows[0].target_std:
            block = _block_of(module_name, blocks)
            stack = blocks[block][0] if block else ""
            hidden_std.setdefault(stack, rows[0].target_std)
    return std_of, role_of, hidden_std


def _hooks(
    named: dict[str, nn.Module],
    checks: dict[str, LayerCheck],
    fans: dict[str, tuple[int, int]],
    blocks: dict[str, tuple[str, int]],
    grads_out: dict[str, float],
    stream_in: dict[str, float],
    stream_out: dict[str, float],
) -> list[Any]:
    """Hooks that fill ``checks`` (observed output rms, predicted output from the input rms,
    observed input gradient), ``grads_out`` (output-gradient rms) and the residual stream's
    rms at the first block's input and at every block's output."""

    def pre(name):
        def hook(module, args):
            if not args or not isinstance(args[0], torch.Tensor):
                return None
            x = args[0]
            check = checks[name]
            check.predicted_out = check.weight_std * math.sqrt(fans[name][0]) * _rms(x)
            if x.requires_grad:
                view = x.view_as(x)  # only this layer reads the view: its gradient is ours

                def grad_hook(g):
                    check.observed_grad = _rms(g)

                view.register_hook(grad_hook)
                return (view, *args[1:])
            return None

        return hook

    def post(name):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                checks[name].observed_out = _rms(output)
                if output.requires_grad:
                    output.register_hook(lambda g: grads_out.__setitem__(name, _rms(g)))

        return hook

    def block_pre(name):
        def hook(module, args, kwargs):
            x = args[0] if args and isinstance(args[0], torch.Tensor) else kwargs.get(
                "hidden_states"
            )  # fmt: skip
            stack, index = blocks[name]
            if index == 0 and isinstance(x, torch.Tensor):
                stream_in[stack] = _rms(x)

        return hook

    def block_post(name):
        def hook(module, args, output):
            out = _first_tensor(output)
            if out is not None:
                stream_out[name] = _rms(out)

        return hook

    handles = []
    for name in checks:
        handles.append(named[name].register_forward_pre_hook(pre(name)))
        handles.append(named[name].register_forward_hook(post(name)))
    for name in blocks:
        handles.append(named[name].register_forward_pre_hook(block_pre(name), with_kwargs=True))
        handles.append(named[name].register_forward_hook(block_post(name)))
    return handles


def _run(
    model: nn.Module, named: dict[str, nn.Module], example_input: Any, seed: int, handles: list
) -> None:
    """The pass in eval mode, loss ``sum(output * r)``; removes ``handles`` and restores the
    training flags and the parameters' ``.grad``."""
    training = {n: m.training for n, m in named.items()}
    grads = {p: p.grad for p in model.parameters()}
    model.eval()
    try:
        result_value = call_model(model, example_input)
        output = getattr(result_value, "logits", None)
        if not isinstance(output, torch.Tensor):
            output = _first_tensor(result_value)
        if output is not None and output.requires_grad:
            generator = torch.Generator(output.device).manual_seed(seed)
            r = torch.randn(output.shape, generator=generator, device=output.device)
            (output.float() * r).sum().backward()
    finally:
        for h in handles:
            h.remove()
        for n, m in named.items():
            m.training = training[n]
        for p, g in grads.items():  # the caller's gradients, as they were
            p.grad = g


def _stream_rows(
    blocks: dict[str, tuple[str, int]],
    checks: dict[str, LayerCheck],
    hidden_std: dict[str, float],
    stream_out: dict[str, float],
) -> list[StreamRow]:
    """Per block: the stream's rms after it, its branch writers' rms, and the reference
    ``sum (out * hidden_std / weight_std)^2 / (2 L)`` (the branch at 1/sqrt(2L) scaling)."""
    rows = []
    for name, (stack, index) in blocks.items():
        if name not in stream_out:
            continue
        writers = [
            c for n, c in checks.items()
            if n.startswith(name + ".") and c.role in ("attn_out", "mlp_down")
            and c.observed_out is not None
        ]  # fmt: skip
        branch = math.sqrt(sum(c.observed_out**2 for c in writers)) if writers else None
        reference = None
        hidden = hidden_std.get(stack)
        if writers and hidden:
            n_blocks = sum(1 for s, _ in blocks.values() if s == stack)
            unscaled = sum((c.observed_out * hidden / c.weight_std) ** 2 for c in writers
                           if c.weight_std)  # fmt: skip
            reference = unscaled / (2 * n_blocks)
        rows.append(StreamRow(stack, index, stream_out[name], branch, reference))
    return rows
