"""How far an MLP-like stack is from the edge of chaos, and how deep it can train.

For a stack of ``nn.Linear`` layers with one activation between them (``nn.Sequential`` or
any model whose Linear layers ``following_activations`` can place), read each hidden layer's
weight and bias variances as mean-field parameters:

- ``sigma_w^2 = fan_in * mean(W^2)`` (the second moment, which is what propagates);
- ``sigma_b^2 = mean(b^2)`` (0 without bias);

average them over the hidden layers (the readout, the last Linear, is left out) and evaluate
the mean-field calculator (:mod:`initlab.initializers.critical`) there: ``chi_1``, the phase,
the depth scale ``xi_c`` and the trainable depth ``6 xi_c``, against the stack's depth. The
recommendation is the critical ``sigma_w^2`` at the current ``sigma_b^2`` (for relu: He,
``sigma_w^2 = 2``, ``sigma_b^2 = 0``).

>>> from torch import nn
>>> net = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(64, 64), nn.Tanh())])
>>> report = mlp_criticality(net)
>>> report.activation, report.phase
('tanh', 'ordered')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from initlab._core.table import format_table
from initlab.initializers.activations import following_activations
from initlab.initializers.critical import critical, mean_field


@dataclass
class MLPCriticality:
    """Mean-field reading of an MLP's init: where it sits, how deep it trains, what to use."""

    activation: str
    depth: int  # hidden layers (Linear + activation)
    sigma_w2: float
    sigma_b2: float
    sigma_w2_per_layer: list[float]
    chi_1: float
    phase: str
    xi_c: float
    max_depth: float
    trainable: bool
    recommended_sigma_w2: float
    recommended_sigma_b2: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {k: clean(v) for k, v in self.__dict__.items()}

    def __str__(self) -> str:
        rows = [
            ("activation", self.activation),
            ("hidden layers", self.depth),
            ("sigma_w^2 (mean over layers)", self.sigma_w2),
            ("sigma_b^2", self.sigma_b2),
            ("chi_1", self.chi_1),
            ("phase", self.phase),
            ("depth scale xi_c", self.xi_c),
            ("trainable depth ~ 6 xi_c", self.max_depth),
            ("recommended (sigma_w^2, sigma_b^2)",
             f"({self.recommended_sigma_w2:.4g}, {self.recommended_sigma_b2:.4g})"),
        ]  # fmt: skip
        return "\n".join([format_table(["mean field", "value"], rows), f"verdict: {self.verdict}"])


def _linear_stack(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    other_kinds = (nn.modules.conv._ConvNd, nn.RNNBase, nn.MultiheadAttention, nn.Embedding)
    others = [m for m in model.modules() if isinstance(m, other_kinds)]
    if len(layers) < 2 or others:
        raise ValueError(
            f"mlp_criticality needs a stack of >= 2 nn.Linear layers and no conv, recurrent, "
            f"attention or embedding layers; {type(model).__name__} has {len(layers)} Linear "
            f"layers and {len(others)} others"
        )
    return layers


def mlp_criticality(model: nn.Module) -> MLPCriticality:
    """Mean-field criticality of an MLP-like ``model`` (see the module docstring)."""
    layers = _linear_stack(model)
    found = following_activations(model)
    hidden = layers[:-1]
    names = [found[n].activation[0] if n in found else "linear" for n, _ in hidden]
    activation = max(set(names), key=names.count)
    params = [found[n].activation[1] for n, _ in hidden if n in found]
    param = next((p for p in params if p is not None), None)
    sw2 = [float(m.weight.detach().double().pow(2).mean()) * m.in_features for _, m in hidden]
    sb2 = [float(m.bias.detach().double().pow(2).mean()) if m.bias is not None else 0.0
           for _, m in hidden]  # fmt: skip
    sigma_w2 = sum(sw2) / len(sw2)
    sigma_b2 = sum(sb2) / len(sb2)
    point = mean_field(activation, sigma_w2, sigma_b2, param=param)
    try:
        best = critical(activation, sigma_b2, param=param)
        rec_w2, rec_b2 = best.sigma_w2, sigma_b2
    except ValueError:  # no edge of chaos at this sigma_b^2: try without bias
        rec_w2, rec_b2 = critical(activation, 0.0, param=param).sigma_w2, 0.0
    depth = len(hidden)
    trainable = depth <= point.max_depth
    if point.phase == "critical":
        verdict = f"at the edge of chaos: {depth} layers train (xi_c is unbounded)"
    elif trainable and abs(point.chi_1 - 1) < 0.05:
        verdict = (f"close to the edge of chaos (chi_1 = {point.chi_1:.4g}): depth {depth} is "
                   f"within the trainable depth ~{point.max_depth:.3g}")  # fmt: skip
    else:
        side = ("ordered: signals converge, gradients vanish" if point.phase == "ordered"
                else "chaotic: nearby inputs decorrelate, gradients explode")  # fmt: skip
        fits = "within" if trainable else "BEYOND"
        verdict = (f"{side} (chi_1 = {point.chi_1:.4g}); depth {depth} is {fits} the trainable "
                   f"depth ~{point.max_depth:.3g}; use sigma_w^2 = {rec_w2:.4g}, "
                   f"sigma_b^2 = {rec_b2:.4g}")  # fmt: skip
    mixed = len(set(names)) > 1
    if mixed:
        verdict += f" (mixed activations {sorted(set(names))}: read as {activation})"
    return MLPCriticality(
        activation=activation, depth=depth, sigma_w2=sigma_w2, sigma_b2=sigma_b2,
        sigma_w2_per_layer=sw2, chi_1=point.chi_1, phase=point.phase, xi_c=point.xi_c,
        max_depth=point.max_depth, trainable=trainable, recommended_sigma_w2=rec_w2,
        recommended_sigma_b2=rec_b2, verdict=verdict,
    )  # fmt: skip


def criticality_section(model: nn.Module) -> MLPCriticality | None:
    """:func:`mlp_criticality` for MLP-like models, ``None`` for others (the doctor's hook)."""
    try:
        return mlp_criticality(model)
    except ValueError:
        return None
