"""Unit-level verdicts: symmetric (identical units), dead (ReLU units off for the whole
batch) and saturated (tanh/sigmoid outputs and recurrent gates at their limits), and the small
helpers every verdict shares. :mod:`initlab.doctor.verdicts` gathers them with the signal
verdicts; the rules are in its docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from initlab.doctor.diagnosis import LayerStats, Thresholds, Verdict

_ADVICE = (
    "; initlab.fix re-initializes with the init recommended for the activation after each layer "
    "(He for the ReLU family, Glorot for tanh/sigmoid, LeCun otherwise)"
)


def _finite(row: LayerStats) -> bool:
    return row.mean is not None and math.isfinite(row.mean) and math.isfinite(row.std or 0.0)


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _beyond_chance(dead: int, units: int, p: float = 0.01) -> bool:
    """``P(X >= dead)`` for ``X ~ Binomial(units, 1/2)`` is below ``p``: more units dead than
    a random symmetric init kills even when every sample looks alike (pooled inputs)."""
    if units > 1000:  # the tail is negligible at >= 75% dead; skip the big integers
        return True
    tail = sum(math.comb(units, k) for k in range(dead, units + 1)) / 2**units
    return tail < p


def _symmetric_rows(
    weighted: list[LayerStats], th: Thresholds, output: LayerStats | None
) -> list[LayerStats]:
    """Weight layers with at least ``th.symmetric`` of their units identical to another
    unit; none when the only one is a zero output layer (deliberate)."""
    symmetric = [
        row
        for row in weighted
        if row.identical is not None and row.identical >= th.symmetric * row.weight_rows  # type: ignore[operator]
    ]
    if output is not None and output.weight_zero and symmetric == [output]:
        return []  # a zero output layer alone is deliberate (see verdicts' docstring)
    return symmetric


def _symmetric_verdict(symmetric: list[LayerStats], weighted: list[LayerStats]) -> list[Verdict]:
    """``symmetric``: the layers :func:`_symmetric_rows` found, and what to change."""
    if symmetric:
        worst = max(symmetric, key=lambda r: r.identical / r.weight_rows)  # type: ignore[operator]
        names = _unique([r.name for r in symmetric])
        return [
            Verdict(
                "symmetric",
                names,
                f"{len(names)} of {len(_unique([r.name for r in weighted]))} weight layers have "
                f"identical units (e.g. {worst.identical} of {worst.weight_rows} rows of "
                f"{worst.name}'s weight are equal): zero or constant init; identical units "
                f"compute the same function and get the same gradient, so training never "
                f"tells them apart; draw these weights at random{_ADVICE}",
                {"layers": len(names), "max_fraction": worst.identical / worst.weight_rows},  # type: ignore[operator]
            )
        ]
    return []


def _dead_verdict(
    rows: list[LayerStats], th: Thresholds, symmetric_layers: set[int]
) -> list[Verdict]:
    """``dead``: ReLU-family layers with at least ``th.dead`` of their units dead on the
    batch, beyond chance (:func:`_beyond_chance`); layers already found symmetric are left to
    that verdict (``symmetric_layers``: their layer numbers)."""
    dead = [
        row
        for row in rows
        if row.dead_fraction is not None
        and row.dead_fraction >= th.dead
        and _beyond_chance(row.dead, row.units)  # type: ignore[arg-type]
        and row.layer not in symmetric_layers
        and row.input_rms != 0  # an all-zero input: vanishing's or symmetric's, not a bias's
        and _finite(row)  # inf/nan outputs are the non-finite verdict's
    ]
    if dead:
        fractions = [r.dead_fraction for r in dead]
        worst = max(dead, key=lambda r: r.dead_fraction)  # type: ignore[arg-type,return-value]
        total = sum(1 for r in rows if r.dead_fraction is not None)
        return [
            Verdict(
                "dead",
                [r.name for r in dead],
                f"in {len(dead)} of {total} ReLU-family layers at least {_pct(th.dead)} of the "
                f"units output <= 0 for the whole batch "
                f"(mean {_pct(sum(fractions) / len(fractions))}, "  # type: ignore[arg-type]
                f"{worst.dead} of {worst.units} in {worst.name}): they pass no gradient; set the "
                f"biases before them to zero (large negative biases kill units) and use He init "
                f"(initlab.fix does both)",
                {
                    "layers": len(dead),
                    "mean_fraction": sum(fractions) / len(fractions),  # type: ignore[arg-type]
                    "max_fraction": worst.dead_fraction,
                },  # type: ignore[dict-item]
            )
        ]
    return []


def _saturated_verdict(rows: Sequence[LayerStats], th: Thresholds) -> list[Verdict]:
    """``saturated``: tanh/sigmoid layers, and recurrent layers whose most saturated gate
    (:mod:`initlab.doctor.recurrent`), have at least ``th.saturated`` of their values
    saturated. A recurrent layer is judged by its worst gate: one gate stuck at 0 or 1 blocks
    the gradient through every path that goes through it."""
    saturated = [
        row
        for row in rows
        if row.saturated is not None and row.saturated >= th.saturated and _finite(row)
    ]
    if not saturated:
        return []
    fractions = [r.saturated for r in saturated]
    worst = max(saturated, key=lambda r: r.saturated)  # type: ignore[arg-type,return-value]
    total = sum(1 for r in rows if r.saturated is not None)
    gated = [r for r in saturated if r.gates]
    inside = _gates_text(gated)
    message = (
        f"in {len(saturated)} of {total} tanh/sigmoid layers (recurrent gates included) at "
        f"least {_pct(th.saturated)} of the outputs are saturated (mean "
        f"{_pct(sum(fractions) / len(fractions))}, max {_pct(worst.saturated)} in "  # type: ignore[arg-type]
        f"{worst.name}): their local gradient is near 0{inside}; the weights before them are "
        "too large for the activation: use Glorot (xavier_normal, gain 1) before tanh and "
        "sigmoid (initlab.fix applies it)"
    )
    numbers = {
        "layers": len(saturated),
        "mean_fraction": sum(fractions) / len(fractions),  # type: ignore[arg-type]
        "max_fraction": worst.saturated,
    }
    for r in gated:
        for k, v in r.gates.items():  # type: ignore[union-attr]
            numbers[f"{r.name}.{k}"] = v
    return [Verdict("saturated", [r.name for r in saturated], message, numbers)]  # type: ignore[arg-type]


def _gates_text(gated: Sequence[LayerStats]) -> str:
    """The recurrent layers' part of the ``saturated`` message: per layer its gates'
    saturated fractions and gradient through time, and what to change."""
    if not gated:
        return ""
    parts = []
    for r in gated:
        gates = ", ".join(f"{k} {_pct(v)}" for k, v in r.gates.items())  # type: ignore[union-attr]
        time = "" if r.time_gain is None else f"; gradient through time x{r.time_gain:.3g} per step"
        parts.append(f"{r.name} ({r.module}) gates saturated: {gates}{time}")
    return (
        f"; inside the recurrent layers, {'; '.join(parts)}: the gate pre-activations "
        "x W_ih^T + h W_hh^T are too large; draw weight_ih and weight_hh with std about "
        "1/sqrt(hidden_size) (PyTorch's default U(-1/sqrt(hidden), 1/sqrt(hidden)), or "
        "Glorot / orthogonal)"
    )
