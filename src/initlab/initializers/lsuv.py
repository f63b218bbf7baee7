"""LSUV: layer-sequential unit-variance init (Mishkin & Matas 2016), in execution order.

Algorithm, per weight layer ``y = W x + b`` in the order the forward runs them:

1. (``orthogonal=True``) ``W`` <- a random orthogonal matrix (rows of ``W.flatten(1)``), ``b`` <- 0;
2. measure ``std(y)`` and ``mean(y)`` on the example batch (over the whole output, or per
   output channel with ``per_channel=True``);
3. weight first, then bias: ``W <- W * a``, ``b <- b * a + c`` with ``a = target / std(y)``,
   ``c = -a mean(y)``. The new output is exactly ``a y + c`` (std ``target``, mean 0).

Why it needs few forward passes: step 3 is exact for the layer's own output, so the forward
hook that measures a layer also *returns* the corrected output ``a y + c``, and every later
layer of the same pass already sees its inputs as they will be. One pass fixes every layer; a
second pass checks (and counts as the first iteration for layers that still miss ``tol``, e.g.
a layer called twice). Further passes stop at the last layer still out of tolerance.

Residual branches: a tensor addition whose two operands both come from the input through
weight layers, where one operand went through more of them than the other, is a residual
merge ``skip + branch``. The branch's last layer is then not scaled to ``target`` but so that
``std(branch) / std(skip) = 1 / sqrt(L)`` at the addition, with ``L`` the number of merges, so
the sum grows by a factor ``(1 + 1/L)`` per block and at most ``e`` over the network instead
of doubling per block. The correction assumes the path from that layer to the addition is
homogeneous (normalization in eval mode with fresh statistics, dropout, layer scale) and is
checked in the next pass like any other.

Measured in eval mode (no dropout; batch norm does not update its running statistics) with
autograd enabled (so PyTorch's fused attention fast path, which skips submodule hooks, is off):
the model's mode and buffers are as before afterwards. Nothing is moved between devices and no
global setting is touched.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from initlab._core.rng import make_generator
from initlab._core.table import format_table
from initlab._core.validation import check_number
from initlab.initializers.model_calls import call_model
from initlab.initializers.residual import Flow as _Flow

_LAYERS = (nn.Linear, nn.Bilinear, nn.Embedding, nn.MultiheadAttention, nn.modules.conv._ConvNd)


def _is_layer(module: nn.Module) -> bool:
    """A weight layer LSUV scales; Hugging Face's ``Conv1D`` (a Linear storing ``(in, out)``)
    is known by its type name."""
    if isinstance(module, _LAYERS):
        return True
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.dim() == 2
    )


class _Stop(Exception):
    """Raised by a hook to end a pass once every layer that needs it has been handled."""


@dataclass
class LSUVRow:
    """One layer: target, std/mean before and after, and the corrections applied."""

    name: str
    kind: str  # "layer", "branch" (last layer of a residual branch) or "tied" (left as is)
    order: int
    target: float  # std target ("layer"), or branch/skip std ratio target ("branch")
    std_before: float
    mean_before: float
    std_after: float = math.nan
    mean_after: float = math.nan
    iterations: int = 0
    converged: bool = False
    note: str = ""


@dataclass
class LSUVReport:
    """What :func:`lsuv` did: one row per weight layer in execution order.

    For a ``branch`` row, ``std_*`` is the ratio ``std(branch) / std(skip)`` at the residual
    addition. ``passes`` counts forward passes (partial ones included); ``seconds`` wall time.
    """

    rows: list[LSUVRow] = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0
    residual_merges: int = 0
    not_called: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return all(r.converged for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "passes": self.passes,
            "seconds": self.seconds,
            "residual_merges": self.residual_merges,
            "converged": self.converged,
            "not_called": list(self.not_called),
            "rows": [{k: clean(v) for k, v in asdict(r).items()} for r in self.rows],
        }

    def __str__(self) -> str:
        headers = ["#", "layer", "kind", "target", "std before", "std after", "mean after",
                   "iters", "ok"]  # fmt: skip
        rows = [(r.order, r.name, r.kind, r.target, r.std_before, r.std_after, r.mean_after,
                 r.iterations, r.converged) for r in self.rows]  # fmt: skip
        lines = [format_table(headers, rows)]
        lines.append(
            f"{len(self.rows)} layers, {self.residual_merges} residual merges, "
            f"{self.passes} forward passes, {self.seconds:.3f} s, "
            f"{'converged' if self.converged else 'NOT converged'}"
        )
        if self.not_called:
            lines.append("never called in the forward (left as they were): "
                         + ", ".join(self.not_called))  # fmt: skip
        return "\n".join(lines)


# ------------------------------------------------------------------ layer helpers
def _weight_bias(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(module, nn.MultiheadAttention):
        return module.out_proj.weight, module.out_proj.bias
    return module.weight, getattr(module, "bias", None)


def _out_dim(module: nn.Module) -> int:
    """The dimension of the weight that indexes output channels."""
    if type(module).__name__ == "Conv1D":
        return 1
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 1
    if isinstance(module, nn.Embedding):
        return 1
    return 0


def _channel_dim(module: nn.Module, y: torch.Tensor) -> int:
    """The output dimension that holds channels: 1 for conv outputs, the last otherwise."""
    if isinstance(module, nn.modules.conv._ConvNd) and y.dim() > 1:
        return 1 if y.dim() > module.weight.dim() - 2 + 1 else 0
    return y.dim() - 1


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        return tensor
    return type(value)((tensor, *value[1:]))


def _stats(y: torch.Tensor, dim: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Std and mean over everything (``dim=None``) or per channel ``dim``, in float32+."""
    y = y.detach()
    if not y.is_floating_point() or y.dtype in (torch.float16, torch.bfloat16):
        y = y.float()
    if dim is None:
        return torch.std_mean(y, correction=0)
    dims = [d for d in range(y.dim()) if d != dim]
    return torch.std_mean(y, dim=dims, correction=0)


def _orthogonal_(module: nn.Module, generator: torch.Generator) -> None:
    weights = []
    if isinstance(module, nn.MultiheadAttention):
        if module.in_proj_weight is not None:
            weights.append(module.in_proj_weight)
        else:
            weights += [module.q_proj_weight, module.k_proj_weight, module.v_proj_weight]
        weights.append(module.out_proj.weight)
        biases = [module.in_proj_bias, module.out_proj.bias]
    elif isinstance(module, nn.Embedding):
        return  # a lookup table, not a map: rescaled only
    else:
        weights.append(module.weight)
        biases = [getattr(module, "bias", None)]
    for w in weights:
        nn.init.orthogonal_(w, generator=_generator_for(generator, w))
    for b in biases:
        if b is not None:
            nn.init.zeros_(b)


def _generator_for(generator: torch.Generator, tensor: torch.Tensor) -> torch.Generator:
    if tensor.device.type == generator.device.type:
        return generator
    # one generator per device, seeded from the CPU stream, so results do not depend on the
    # order devices are met in
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return make_generator(seed, tensor.device)


# ------------------------------------------------------------------ the algorithm
def _ratio(branch: torch.Tensor, skip: torch.Tensor) -> float:
    """``std(branch) / std(skip)``."""
    return float(_stats(branch, None)[0] / _stats(skip, None)[0].clamp_min(1e-12))


def _check_example(example: Any) -> None:
    values = example.values() if isinstance(example, dict) else (
        example if isinstance(example, tuple) else (example,))  # fmt: skip
    if not any(isinstance(v, torch.Tensor) for v in values):
        raise TypeError(
            "example_input must be a tensor, a tuple of positional arguments or a dict of "
            f"keyword arguments holding at least one tensor; got {type(example).__name__}"
        )


class _Run:
    def __init__(self, model, example, target, tol, max_iter, per_channel):
        self.model, self.example = model, example
        self.target, self.tol, self.max_iter, self.per_channel = target, tol, max_iter, per_channel
        self.layers = [(n, m) for n, m in model.named_modules() if _is_layer(m)]
        self.owners: dict[int, int] = {}  # id(weight) -> first layer (execution order) using it
        # a MultiheadAttention's out_proj is applied functionally, never called: skip it
        inner = {id(m.out_proj) for _, m in self.layers if isinstance(m, nn.MultiheadAttention)}
        self.layers = [(n, m) for n, m in self.layers if id(m) not in inner]
        self.order: list[int] = []  # layer indices in execution order
        self.branch_end: dict[int, int] = {}  # layer index -> merges it ends (first merge kept)
        self.merges = 0
        self.rows: dict[int, LSUVRow] = {}
        self.passes = 0

    # one forward pass with hooks; mode: "trace" | "fix"
    def forward(self, mode: str, stop_after: int | None = None) -> None:
        seen: set[int] = set()
        pending: set[int] = set()
        flow = _Flow(self._merge_hook(mode))
        handles = []
        for index, (_, module) in enumerate(self.layers):
            handles.append(module.register_forward_hook(self._layer_hook(mode, index, seen, flow)))
        for t in tree_flatten(self.example)[0]:
            if isinstance(t, torch.Tensor):
                flow.tag(t, (None, 0))
        self.passes += 1
        self._stop_after = stop_after
        self._pending = pending
        try:
            with flow:
                call_model(self.model, self.example)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
            flow.tags.clear()
            flow.alive.clear()

    def _layer_hook(self, mode: str, index: int, seen: set[int], flow: _Flow):
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            if index in seen or (mode == "fix" and index not in self.rows):
                return None  # a second call (weights already set), or not seen when tracing
            seen.add(index)
            y = _first_tensor(output)
            if y is None or not y.is_floating_point():
                return None
            in_tags = [flow.get(t) for t in tree_flatten(args)[0]]
            depth = max((t[1] for t in in_tags if t is not None), default=0) + 1
            flow.quiet = True
            try:
                if mode == "trace":
                    self.order.append(index)
                    std, mean = _stats(y, None)
                    self.rows[index] = LSUVRow(
                        name=self.layers[index][0], kind="layer", order=len(self.order),
                        target=self.target, std_before=float(std), mean_before=float(mean),
                    )  # fmt: skip
                    owner = self.owners.setdefault(id(_weight_bias(module)[0]), index)
                    if owner != index:  # tied weights (GPT-2's lm_head is wte): one owner
                        row = self.rows[index]
                        row.kind, row.converged, row.std_after = "tied", True, float(std)
                        row.note = f"weight tied to {self.layers[owner][0]}: left as is"
                    new = None
                else:
                    new = self._fix_layer(index, module, y)
            finally:
                flow.quiet = False
            result = _replace_first(output, new) if new is not None else output
            flow.tag(_first_tensor(result), (index, depth))
            if self._stop_after == index and not self.branch_end.get(index):
                raise _Stop
            return result if new is not None else None

        return hook

    def _fix_layer(self, index: int, module: nn.Module, y: torch.Tensor) -> torch.Tensor | None:
        row = self.rows[index]
        if row.kind == "tied":
            return None
        dim = _channel_dim(module, y) if self.per_channel else None
        std, mean = _stats(y, dim)
        weight, bias = _weight_bias(module)
        is_branch = index in self.branch_end
        pooled_std, pooled_mean = _stats(y, None)
        if is_branch:
            # std is handled at the addition; here only the mean
            off_std = False
        else:
            row.std_after, row.mean_after = float(pooled_std), float(pooled_mean)
            worst = float((std - self.target).abs().max())
            off_std = worst > self.tol
        off_mean = bias is not None and float(mean.abs().max()) > self.tol * self.target
        if not (off_std or off_mean):
            if not is_branch:
                row.converged = True
            return None
        if row.iterations >= self.max_iter:
            row.note = f"not within tol after {self.max_iter} iterations"
            return None
        if not is_branch:
            row.iterations += 1
        a = (self.target / std.clamp_min(1e-12)) if off_std else torch.ones_like(std)
        if dim is not None and a.dim() == 1 and weight.shape[_out_dim(module)] != a.shape[0]:
            a = a.new_full((), float(self.target / pooled_std.clamp_min(1e-12)))  # shapes differ
        c = -a * mean if bias is not None else torch.zeros_like(mean)
        with torch.no_grad():
            shape = [1] * weight.dim()
            if a.dim() == 1:
                shape[_out_dim(module)] = -1
            weight.mul_(a.to(weight.dtype).reshape(shape))
            if bias is not None:
                bias.mul_(a.to(bias.dtype)).add_(c.to(bias.dtype))
        if bias is None and float(mean.abs().max()) > self.tol * self.target:
            row.note = "no bias: mean left as is"
        if a.dim() == 1:
            view = [1] * y.dim()
            view[dim] = -1
            a, c = a.reshape(view), c.reshape(view)
        new = y * a.to(y.dtype) + c.to(y.dtype)
        if not is_branch:
            s, m = _stats(new, None)
            row.std_after, row.mean_after = float(s), float(m)
        return new

    def _merge_hook(self, mode: str):
        count = [0]

        def on_merge(layer: int | None, branch: torch.Tensor, skip: torch.Tensor) -> Any:
            if layer is None or self.rows[layer].kind == "tied":
                return None
            count[0] += 1
            if mode == "trace":
                self.merges += 1
                if layer not in self.branch_end:
                    self.branch_end[layer] = self.merges
                    row = self.rows[layer]
                    row.std_before = _ratio(branch, skip)
                    row.mean_before = float(branch.detach().float().mean())
                return None
            if self.branch_end.get(layer) != count[0]:
                return None  # not the first merge this layer ends
            row = self.rows[layer]
            target = 1.0 / math.sqrt(self.merges)
            ratio = _ratio(branch, skip)
            factor = None
            if abs(ratio / target - 1) > self.tol:
                if row.iterations >= self.max_iter:
                    row.note = f"not within tol after {self.max_iter} iterations"
                else:
                    row.iterations += 1
                    factor = target / max(ratio, 1e-12)
                    module = self.layers[layer][1]
                    weight, bias = _weight_bias(module)
                    with torch.no_grad():
                        weight.mul_(factor)
                        if bias is not None:
                            bias.mul_(factor)
            else:
                row.converged = True
            row.std_after = ratio * (factor or 1.0)
            row.mean_after = float(branch.detach().float().mean() * (factor or 1.0))
            if self._stop_after == layer:
                raise _Stop
            return factor

        return on_merge


def lsuv(
    model: nn.Module,
    example_input: Any,
    *,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    orthogonal: bool = True,
    per_channel: bool = False,
    seed: int | torch.Generator | None = None,
) -> LSUVReport:
    """Layer-sequential unit-variance init of ``model`` on ``example_input``, in place.

    ``example_input`` is how the model is called: a tensor, a tuple of positional arguments or
    a dict of keyword arguments. Weight layers (Linear, Conv*, ConvTranspose*, Bilinear,
    Embedding, MultiheadAttention via its output projection) are visited in the order the
    forward runs them; each gets output std ``target_std`` within ``tol`` and mean 0 (when it
    has a bias), or, as the last layer of a residual branch, ``std(branch) / std(skip) =
    1 / sqrt(L)`` within ``tol`` relative. ``per_channel=True`` matches each output channel.
    ``orthogonal=True`` first draws orthogonal weights (from ``seed``) and zero biases.
    Returns an :class:`LSUVReport` (std before and after, iterations, passes, time).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    >>> report = lsuv(net, torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), seed=0)
    >>> report.converged, report.passes
    (True, 3)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    _check_example(example_input)
    target_std = check_number("target_std", target_std, minimum=0, strict_minimum=True)
    tol = check_number("tol", tol, minimum=0, strict_minimum=True)
    max_iter = int(check_number("max_iter", max_iter, minimum=1, integer=True))
    start = time.perf_counter()
    run = _Run(model, example_input, target_std, tol, max_iter, per_channel)
    if not run.layers:
        raise ValueError(
            f"{type(model).__name__} has no weight layers LSUV can scale (Linear, Conv*, "
            "Embedding, MultiheadAttention)"
        )
    was_training = {m: m.training for m in model.modules()}
    buffers = {id(b): b.detach().clone() for b in model.buffers()}
    try:
        model.eval()
        with torch.enable_grad():
            if orthogonal:
                generator = make_generator(seed if seed is not None else 0)
                with torch.no_grad():
                    for _, module in run.layers:
                        _orthogonal_(module, generator)
            run.forward("trace")
            last = run.order[-1] if run.order else None
            for _ in range(max_iter + 1):
                run.forward("fix", stop_after=last)
                open_rows = [i for i in run.order if not run.rows[i].converged
                             and not run.rows[i].note.startswith("not within")]  # fmt: skip
                if not open_rows:
                    break
                for i in open_rows:
                    run.rows[i].converged = False
                # the next pass can stop after the last layer still out of tolerance
                last = open_rows[-1]
    finally:
        for module, training in was_training.items():
            module.training = training
        with torch.no_grad():
            for b in model.buffers():
                if id(b) in buffers:
                    b.copy_(buffers[id(b)])
    called = set(run.order)
    report = LSUVReport(
        rows=[run.rows[i] for i in run.order],
        passes=run.passes,
        seconds=time.perf_counter() - start,
        residual_merges=run.merges,
        not_called=[n for i, (n, _) in enumerate(run.layers) if i not in called],
    )
    for i in run.order:
        if i in run.branch_end and run.rows[i].kind != "tied":
            run.rows[i].kind = "branch"
            run.rows[i].target = 1.0 / math.sqrt(run.merges)
    return report
