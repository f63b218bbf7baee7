"""Inside recurrent layers: gate saturation and the gradient through time of ``nn.LSTM``,
``nn.GRU`` and ``nn.RNN``.

A recurrent module is one call to the probe, and its output (the hidden states) hides what
goes wrong inside: with N(0, 1) weights every gate pre-activation has a std of about
``sqrt(input_size + hidden_size)``, so the sigmoid gates sit at 0 or 1 and the tanh
candidates at -1 or 1, and no gradient passes them. :func:`_unroll` recomputes the module's
forward step by step from its own parameters (PyTorch's equations, no ``torch._VF``) on the
input of the diagnosed call, with ``h_0`` (and ``c_0``) as given, else zeros:

- LSTM (gates ``i, f, g, o``): ``z = x W_ih^T + b_ih + h W_hh^T + b_hh`` split in four,
  ``i, f, o = sigmoid(.)``, ``g = tanh(.)``, ``c' = f * c + i * g``, ``h' = o * tanh(c')``
  (times ``W_hr^T`` when ``proj_size > 0``);
- GRU (gates ``r, z, n``): ``r, z = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)`` (and
  ``z``), ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``, ``h' = (1 - z) * n + z * h``;
- RNN: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (``relu``: no saturation to measure).

It returns, as tensors (no host sync), per gate the fraction of its values that are saturated
(sigmoid within ``sigmoid_margin`` of 0 or 1, tanh with ``|a| > tanh_level``), the fraction
pooled over every gate value, and the gradient through time of the top layer (forward
direction): with ``L = v . h_T`` for a fixed ``v ~ N(0, 1)``, ``||dL/dh_1|| / ||dL/dh_T||``
over ``T - 1`` steps. This is the doctor's only extra computation, and only for models with
recurrent layers: one more forward of each recurrent layer (a Python loop over time steps, on
the diagnosed batch) and one backward through its top layer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_GATES = {
    "LSTM": (("input", "sigmoid"), ("forget", "sigmoid"), ("cell", "tanh"), ("output", "sigmoid")),
    "GRU": (("reset", "sigmoid"), ("update", "sigmoid"), ("new", "tanh")),
    "RNN_TANH": (("hidden", "tanh"),),
}
_TIME_SEED = 0x7133


def _mode(module: nn.Module) -> str | None:
    """``LSTM``, ``GRU`` or ``RNN_TANH`` for PyTorch's recurrent modules, else ``None``."""
    if isinstance(module, nn.RNNBase) and module.mode in _GATES:
        return module.mode
    return None


def _cell(
    mode: str, x_part: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, weights: dict
) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """One time step: ``x_part = x W_ih^T + b_ih`` (precomputed for all steps); returns the
    new ``h``, ``c`` and the gate values in :data:`_GATES` order."""
    hh = F.linear(h, weights["w_hh"], weights["b_hh"])
    if mode == "LSTM":
        i, f, g, o = (x_part + hh).chunk(4, dim=-1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g  # type: ignore[operator]
        h = o * c.tanh()
        if weights.get("w_hr") is not None:
            h = F.linear(h, weights["w_hr"])
        return h, c, [i, f, g, o]
    if mode == "GRU":
        xr, xz, xn = x_part.chunk(3, dim=-1)
        hr, hz, hn = hh.chunk(3, dim=-1)
        r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
        n = (xn + r * hn).tanh()
        return (1 - z) * n + z * h, None, [r, z, n]
    h = (x_part + hh).tanh()
    return h, None, [h]


def _initial(module: nn.RNNBase, hx: Any, batch: int, like: torch.Tensor) -> tuple[Any, Any]:
    """``(h_0, c_0)`` stacked over layers and directions: the given ones, else zeros."""
    dirs = 2 if module.bidirectional else 1
    size = module.proj_size if getattr(module, "proj_size", 0) else module.hidden_size
    h0 = c0 = None
    if isinstance(hx, tuple):
        h0, c0 = hx
    elif isinstance(hx, torch.Tensor):
        h0 = hx
    if isinstance(h0, torch.Tensor) and h0.dim() == 2:  # unbatched
        h0 = h0.unsqueeze(1)
        c0 = c0.unsqueeze(1) if isinstance(c0, torch.Tensor) else None
    zeros = like.new_zeros
    h0 = zeros(module.num_layers * dirs, batch, size) if h0 is None else h0.detach()
    if module.mode == "LSTM":
        c0 = zeros(module.num_layers * dirs, batch, module.hidden_size) if c0 is None else c0
        c0 = c0.detach()
    return h0, c0


def _unroll(
    module: nn.RNNBase,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    tanh_level: float,
    sigmoid_margin: float,
) -> dict[str, torch.Tensor | float] | None:
    """Gate saturation and gradient through time of one recurrent call (see the module
    docstring); ``None`` for inputs it cannot replay (a ``PackedSequence``, no tensor).
    Keys: ``gate:<name>`` (fraction), ``gate_saturated`` (pooled fraction), ``time_first`` and
    ``time_last`` (``||dL/dh_1||`` and ``||dL/dh_T||``, float64), and ``time_steps`` (``T``,
    a number)."""
    mode = _mode(module)
    x = args[0] if args else kwargs.get("input")
    if mode is None or not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    x = x.detach()
    if x.dim() == 2:  # unbatched (T, features)
        x = x.unsqueeze(1)
    elif module.batch_first:
        x = x.transpose(0, 1)  # (T, B, features)
    steps, batch = x.shape[0], x.shape[1]
    if steps == 0:
        return None
    h0, c0 = _initial(module, hx, batch, x)
    with torch.enable_grad():
        _, gates, top = _run(module, x, h0, c0)
        stats = _gate_stats(mode, gates, tanh_level, sigmoid_margin)
        stats.update(_through_time(top))
    return {**stats, "time_steps": float(steps)}


def _run(
    module: nn.RNNBase, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None
) -> tuple[torch.Tensor, list[list[torch.Tensor]], list[torch.Tensor]]:
    """The module's forward on ``x`` ``(T, B, features)``, step by step: the output
    ``(T, B, dirs * hidden)``, per gate the list of its values at every step (all layers and
    directions, detached) and the top layer's forward-direction hidden states ``h_1..h_T``."""
    mode = module.mode
    dirs = 2 if module.bidirectional else 1
    gates: list[list[torch.Tensor]] = [[] for _ in _GATES[mode]]
    layer_input, top = x, []
    for layer in range(module.num_layers):
        outs = []
        for d in range(dirs):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            weights = {
                "w_hh": getattr(module, f"weight_hh{suffix}"),
                "b_hh": getattr(module, f"bias_hh{suffix}", None),
                "w_hr": getattr(module, f"weight_hr{suffix}", None),
            }
            seq = layer_input if d == 0 else layer_input.flip(0)
            # x W_ih^T + b_ih for all steps at once: (T, B, gates * hidden).
            x_parts = F.linear(
                seq,
                getattr(module, f"weight_ih{suffix}"),
                getattr(module, f"bias_ih{suffix}", None),
            )
            h = h0[layer * dirs + d]
            c = None if c0 is None else c0[layer * dirs + d]
            hs = []
            for t in range(x.shape[0]):
                h, c, values = _cell(mode, x_parts[t], h, c, weights)
                for slot, value in zip(gates, values, strict=True):
                    slot.append(value.detach())
                hs.append(h)
            out = torch.stack(hs)
            outs.append(out if d == 0 else out.flip(0))
            if layer == module.num_layers - 1 and d == 0:
                top = hs
        layer_input = torch.cat(outs, dim=-1)
    return layer_input, gates, top


def _gate_stats(
    mode: str, gates: list[list[torch.Tensor]], tanh_level: float, sigmoid_margin: float
) -> dict[str, torch.Tensor | float]:
    """Per gate the fraction of saturated values, and the fraction pooled over all gates."""
    stats: dict[str, torch.Tensor | float] = {}
    saturated, total = [], 0
    with torch.no_grad():
        for (name, kind), values in zip(_GATES[mode], gates, strict=True):
            flat = torch.cat([v.reshape(-1) for v in values])
            if kind == "sigmoid":
                count = ((flat - 0.5).abs() > 0.5 - sigmoid_margin).sum()
            else:
                count = (flat.abs() > tanh_level).sum()
            stats[f"gate:{name}"] = count / flat.numel()
            saturated.append(count)
            total += flat.numel()
        stats["gate_saturated"] = torch.stack(saturated).sum() / total
    return stats


def _through_time(hs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``||dL/dh_1||`` and ``||dL/dh_T||`` for ``L = v . h_T``, ``v ~ N(0, 1)`` fixed."""
    if len(hs) < 2 or not hs[-1].requires_grad:
        return {}
    last = hs[-1]
    generator = torch.Generator().manual_seed(_TIME_SEED)
    v = torch.randn(last.shape, generator=generator).to(device=last.device, dtype=last.dtype)
    first, final = torch.autograd.grad((last * v).sum(), [hs[0], last], allow_unused=True)
    if first is None:  # pragma: no cover - h_T always depends on h_1
        first = torch.zeros_like(hs[0])
    return {
        "time_first": torch.linalg.vector_norm(first, dtype=torch.float64),
        "time_last": torch.linalg.vector_norm(final, dtype=torch.float64),
    }
