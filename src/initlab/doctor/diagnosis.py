"""What the doctor returns: per-layer statistics, findings, recommendations, and their thresholds.

- :class:`Thresholds`: when a statistic becomes a finding (the verdicts' limits, and what counts
  as saturated or identical);
- :class:`LayerStats`: the statistics of one module call (how each is measured:
  :mod:`initlab.probe`);
- :class:`Verdict`: a finding, one of :data:`KINDS` (how each is decided:
  :mod:`initlab.verdicts`);
- :class:`Recommendation`: the init a weight layer should get (:mod:`initlab.recommendations`);
- :class:`Diagnosis`: the result of :func:`initlab.diagnose`, rows in forward order, verdicts
  and recommendations, as a table (``str``), JSON (``to_dict``) or a plot;
- :class:`Fix`: the result of :func:`initlab.fix`, diagnoses before and after.

Plain dataclasses: nothing here runs a model or holds a hook.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import torch

from initlab._core.table import format_table
from initlab._core.validation import check_number
from initlab.initializers.apply import InitReport

VerdictKind = Literal[
    "non-finite", "symmetric", "dead", "saturated", "exploding", "vanishing", "healthy"
]
KINDS: tuple[str, ...] = (
    "non-finite",
    "symmetric",
    "dead",
    "saturated",
    "exploding",
    "vanishing",
    "healthy",
)
"""Verdict kinds, most fundamental first (the order of :attr:`Diagnosis.verdicts`)."""


@dataclass(frozen=True)
class Thresholds:
    """When a statistic becomes a finding. Ratios compare layers along depth.

    - ``vanishing`` (1e-2): activation rms of some layer below this fraction of layer 1's, or
      a gradient norm below this fraction of the last layer's;
    - ``exploding`` (1e2): the same ratios above this;
    - ``saturated`` (0.3): fraction of a tanh/sigmoid layer's outputs that are saturated;
    - ``dead`` (0.75): fraction of a ReLU-family layer's units dead on the batch (deep ReLU
      nets at He init already lose a quarter to two fifths of their units on one batch at
      depth 50, as the samples' representations become correlated);
    - ``symmetric`` (0.5): fraction of a layer's units identical to another unit;
    - ``identical_rtol`` (1e-5): rows count as equal when they differ (in norm) by at most this
      times the rms row norm of the weight;
    - ``sigmoid_margin`` (0.01) and ``tanh_level`` (0.99): what counts as saturated;
    - ``weight_gain`` (5.0): a weight layer whose rms row norm ``||W|| / sqrt(units)`` (the
      factor by which it scales an uncorrelated input's rms, ``sqrt(fan_in) * std``) is above
      this, or below ``vanishing``, has weights of the wrong scale on its own (variance-
      preserving inits give 0.5 to 3; N(0, 1) weights give ``sqrt(fan_in)``);
    - ``output_rms`` (10.0): the model's output layer is judged by the rms of its output (the
      logits), exploding above this; a small or zero output layer is never a finding (it is a
      deliberate choice: zero heads, N(0, 0.01) heads, ``1 / sqrt(d)`` scaled logits);
    - ``bias_dominated`` (10.0): a weight layer whose output rms is above this times what its
      weights carry from its input (``||W|| / sqrt(units) * rms(input)``) outputs mostly its
      bias: the signal along its chain is measured afresh from it (an LSTM with N(0, 1e-4)
      weights outputs its default biases, 500x its tiny input: vanishing, not exploding).
    """

    vanishing: float = 1e-2
    exploding: float = 1e2
    saturated: float = 0.3
    dead: float = 0.75
    symmetric: float = 0.5
    identical_rtol: float = 1e-5
    sigmoid_margin: float = 0.01
    tanh_level: float = 0.99
    weight_gain: float = 5.0
    output_rms: float = 10.0
    bias_dominated: float = 10.0

    def __post_init__(self) -> None:
        check_number("vanishing", self.vanishing, minimum=0.0, maximum=1.0, strict_minimum=True)
        check_number("exploding", self.exploding, minimum=1.0)
        for name in ("saturated", "dead", "symmetric"):
            check_number(name, getattr(self, name), minimum=0.0, maximum=1.0, strict_minimum=True)
        check_number("identical_rtol", self.identical_rtol, minimum=0.0)
        check_number("sigmoid_margin", self.sigmoid_margin, minimum=0.0, maximum=0.5)
        check_number("tanh_level", self.tanh_level, minimum=0.0, maximum=1.0)
        check_number("weight_gain", self.weight_gain, minimum=1.0)
        check_number("output_rms", self.output_rms, minimum=0.0, strict_minimum=True)
        check_number("bias_dominated", self.bias_dominated, minimum=1.0)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class LayerStats:
    """Statistics of one module call (one row of :class:`Diagnosis`); ``None`` = not applicable."""

    index: int
    name: str
    module: str
    layer: int
    shape: tuple[int, ...] | None = None
    mean: float | None = None
    std: float | None = None
    zeros: float | None = None
    saturated: float | None = None
    dead: int | None = None
    units: int | None = None
    grad_output: float | None = None
    weight_norm: float | None = None
    grad_weight: float | None = None
    identical: int | None = None
    weight_rows: int | None = None
    weighted: bool = False
    input_rms: float | None = None
    # The chain of weight layers this call belongs to (None: none), and whether more than one
    # op consumed its output (a fork: a residual stream feeding a branch and the skip path).
    chain: int | None = None
    forks: bool = False
    weight_zero: bool = False
    gates: dict[str, float] | None = None
    time_gain: float | None = None
    samples: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def rms(self) -> float | None:
        """``sqrt(mean^2 + std^2)``: the scale of the output."""
        if self.mean is None or self.std is None:
            return None
        return math.hypot(self.mean, self.std)

    @property
    def gain(self) -> float | None:
        """``rms(output) / rms(input)`` of a weight layer: its own effect on the signal's
        scale (about 1 to 1.4 for a variance-preserving init; ``sqrt(fan_in) * std`` for
        weights of std ``std`` on an uncorrelated input)."""
        rms = self.rms
        if rms is None or self.input_rms is None or not self.input_rms:
            return None
        if not math.isfinite(self.input_rms):
            return None
        return rms / self.input_rms

    @property
    def grad_ratio(self) -> float | None:
        """``||dL/dW|| / ||W||``."""
        if self.grad_weight is None or not self.weight_norm:
            return None
        return self.grad_weight / self.weight_norm

    @property
    def weight_gain(self) -> float | None:
        """``||W|| / sqrt(units)``: the rms norm of a unit's weights, the factor by which the
        layer scales the rms of an uncorrelated input (``sqrt(fan_in) * std``)."""
        if self.weight_norm is None or not self.weight_rows:
            return None
        return self.weight_norm / math.sqrt(self.weight_rows)

    @property
    def dead_fraction(self) -> float | None:
        return None if self.dead is None or not self.units else self.dead / self.units

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        if self.gates is not None:
            data["gates"] = {k: _json_number(v) for k, v in self.gates.items()}
        data["shape"] = None if self.shape is None else list(self.shape)
        data["rms"] = self.rms
        data["grad_ratio"] = self.grad_ratio
        data["gain"] = self.gain
        return {k: _json_number(v) for k, v in data.items()}


@dataclass
class Verdict:
    """A finding: its ``kind``, the modules involved, a sentence and the numbers behind it."""

    kind: str
    layers: list[str]
    message: str
    numbers: dict[str, float] = field(default_factory=dict)
    signal: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["numbers"] = {k: _json_number(v) for k, v in self.numbers.items()}
        return data


@dataclass
class Recommendation:
    """The init a weight layer should get for the activation that follows it."""

    parameter: str
    activation: str
    scheme: str
    family: str
    expected_std: float
    current_rms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in asdict(self).items()}


@dataclass
class Diagnosis:
    """The result of :func:`diagnose`: rows in forward order, verdicts, recommendations."""

    layers: list[LayerStats]
    verdicts: list[Verdict]
    recommendations: list[Recommendation]
    thresholds: Thresholds
    loss: float | None = None
    label: str = "model"
    iteration: int | None = None
    recipe: Any = None  # a RecipeCheck when diagnose(..., recipe=NAME) was asked
    # Deeper checks asked for with diagnose(..., sections=...): name -> sections.Section.
    sections: dict[str, Any] = field(default_factory=dict)

    _HEADERS = (
        "#",
        "layer",
        "module",
        "mean",
        "std",
        "zeros",
        "saturated",
        "dead",
        "grad out",
        "grad W",
        "grad/W",
        "identical",
    )

    @property
    def kinds(self) -> list[str]:
        """The verdict kinds, most fundamental first."""
        return [v.kind for v in self.verdicts]

    @property
    def healthy(self) -> bool:
        return self.kinds == ["healthy"]

    @property
    def primary(self) -> Verdict:
        """The most fundamental finding (symmetric > dead > saturated > exploding > vanishing)."""
        return self.verdicts[0]

    @property
    def weighted(self) -> list[LayerStats]:
        """Rows of the weight layers' calls, in forward order (layer 1, 2, ...)."""
        return [row for row in self.layers if row.weighted]

    def table(self) -> str:
        rows = []
        for r in self.layers:
            dead = None if r.dead is None else f"{r.dead}/{r.units}"
            identical = None if r.identical is None else f"{r.identical}/{r.weight_rows}"
            rows.append(
                (
                    r.index,
                    r.name,
                    r.module,
                    r.mean,
                    r.std,
                    r.zeros,
                    r.saturated,
                    dead,
                    r.grad_output,
                    r.grad_weight,
                    r.grad_ratio,
                    identical,
                )
            )
        return format_table(self._HEADERS, rows)

    def __str__(self) -> str:
        return self.text()

    def text(self, *, sections: bool = True) -> str:
        """The table, verdicts, recommendations (when unhealthy), the recipe check and, with
        ``sections``, each deeper check asked for (:mod:`initlab.doctor.sections`)."""
        lines = [self.table(), "", f"verdicts ({self.label}):"]
        lines += [f"  - {v}" for v in self.verdicts]
        if not self.healthy and self.recommendations:
            lines += ["", "recommended init (initlab.fix applies it):"]
            lines.append(
                format_table(
                    ["parameter", "activation", "scheme", "expected std", "current rms"],
                    [
                        (r.parameter, r.activation, r.scheme, r.expected_std, r.current_rms)
                        for r in self.recommendations
                    ],
                )
            )
        if self.recipe is not None:
            lines += ["", str(self.recipe)]
        for section in self.sections.values() if sections else ():
            lines += ["", str(section)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "label": self.label,
            "iteration": self.iteration,
            "loss": _json_number(self.loss),
            "thresholds": self.thresholds.to_dict(),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "recommendations": [r.to_dict() for r in self.recommendations],
            "layers": [r.to_dict() for r in self.layers],
        }
        if self.recipe is not None:
            data["recipe"] = self.recipe.to_dict()
        if self.sections:
            data["sections"] = {name: s.to_dict() for name, s in self.sections.items()}
        return data


def _json_number(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass
class Fix:
    """The result of :func:`fix`: diagnoses before and after, and what was re-initialized."""

    before: Diagnosis
    after: Diagnosis
    init: InitReport | None
    rules: dict[str, str]

    @property
    def applied(self) -> set[str]:
        """Qualified names of the modules whose weights were re-initialized."""
        return {name.rpartition(".")[0] for name in self.rules if not name.endswith("bias")}

    @property
    def resolved(self) -> list[Verdict]:
        """Findings before that are gone after and that named a re-initialized layer (or the
        whole model): they went away because of what ``fix`` applied."""
        after = {(v.kind, v.signal) for v in self.after.verdicts}
        applied = self.applied
        return [
            v
            for v in self.before.verdicts
            if v.kind != "healthy"
            and (v.kind, v.signal) not in after
            and (not v.layers or any(n.partition("#")[0] in applied for n in v.layers))
        ]

    @property
    def success(self) -> bool:
        """Unhealthy before, healthy after, and every finding resolved by what was applied."""
        findings = [v for v in self.before.verdicts if v.kind != "healthy"]
        return bool(findings) and self.after.healthy and len(self.resolved) == len(findings)

    def _outcome(self) -> str:
        if self.before.healthy:
            return "nothing to fix: healthy before, nothing was changed"
        if self.success:
            return "fixed: " + ", ".join(v.kind for v in self.resolved)
        left = [v.kind for v in self.after.verdicts if v.kind != "healthy"]
        done = [v.kind for v in self.resolved]
        return (
            f"not fixed: {', '.join(left) or 'findings not caused by the re-initialized layers'}"
            f" remain" + (f" (resolved: {', '.join(done)})" if done else "")
        )

    def __str__(self) -> str:
        if self.init is None:
            return "\n".join(
                ["before:", *[f"  - {v}" for v in self.before.verdicts], "", self._outcome()]
            )
        rows = [
            (b.layer, b.name, b.rms, a.rms, b.grad_output, a.grad_output)
            for b, a in zip(self.before.weighted, self.after.weighted, strict=False)
        ]
        lines = ["before:"]
        lines += [f"  - {v}" for v in self.before.verdicts]
        weights = {name for name in self.rules if not name.endswith("bias")}
        lines += ["", f"re-initialized {len(weights)} weight layers (biases to zero):"]
        lines.append(
            format_table(
                ["parameter", "scheme", "target std"],
                [
                    (r.parameter, r.scheme, r.target_std)
                    for r in self.init.rows
                    # a gate block's row is labelled "name[role]"
                    if r.action == "rule" and r.parameter.partition("[")[0] in weights
                ],
            )
        )
        lines += ["", "after:"]
        lines += [f"  - {v}" for v in self.after.verdicts]
        lines += ["", self._outcome()]
        lines += [
            "",
            format_table(
                ["layer", "module", "rms before", "rms after", "grad before", "grad after"], rows
            ),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "rules": dict(self.rules),
            "init": None if self.init is None else self.init.to_dict(),
            "success": self.success,
            "resolved": [v.kind for v in self.resolved],
        }
