"""The doctor's verdicts: what is wrong with an init, read from per-layer statistics.

The verdicts (:class:`~initlab.diagnosis.Verdict`) compare layers along depth, using the outputs
of the weight layers (``Linear``, ``Conv``, ...) in forward order, numbered from 1:

- **vanishing** / **exploding** (activations): ``rms_l / rms_1`` falls below ``vanishing`` or
  rises above ``exploding`` for some layer ``l``, or non-finite values appear (exploding);
- **vanishing** / **exploding** (gradients): ``||dL/dy_l|| / ||dL/dy_L||`` for the layers before
  the last one ``L`` (the gradient norm is preserved by a good init, the per-element rms is not
  when widths change);
- **saturated**: at least ``saturated`` of a tanh/sigmoid layer's outputs are saturated;
- **dead**: at least ``dead`` of a ReLU-family layer's units are dead on the batch (layers whose
  weights are symmetric are left to that verdict);
- **symmetric**: at least ``symmetric`` of a layer's units are identical to another unit;
- **healthy**: none of the above.

Every threshold is a field of :class:`~initlab.diagnosis.Thresholds`. :func:`_verdicts` returns
the findings most fundamental first (the order of :data:`~initlab.diagnosis.KINDS`).
"""

from __future__ import annotations

import math

from initlab._core.table import format_value
from initlab.doctor.diagnosis import KINDS, LayerStats, Thresholds, Verdict


def _fmt(value: float) -> str:
    return format_value(float(value)) if math.isfinite(value) else str(value)


def _where(row: LayerStats) -> str:
    return f"layer {row.layer} ({row.name})"


def _ratio_verdicts(
    series: list[tuple[LayerStats, float]],
    reference: LayerStats,
    ref_value: float,
    th: Thresholds,
    what: str,
    signal: str,
    backward: bool,
) -> list[Verdict]:
    found: list[Verdict] = []
    others = [(row, v) for row, v in series if row is not reference]
    if not others:
        return found
    low_row, low = min(others, key=lambda rv: rv[1])
    high_row, high = max(others, key=lambda rv: rv[1])
    steps = lambda row: max(1, abs(row.layer - reference.layer))  # noqa: E731
    for kind, row, value, bad in (
        ("vanishing", low_row, low, lambda r: r < th.vanishing),
        ("exploding", high_row, high, lambda r: r > th.exploding),
    ):
        ratio = value / ref_value
        if not bad(ratio):
            continue
        verb = "falls" if kind == "vanishing" else "grows"
        per_layer = _rate(series, reference, row, ref_value, value, steps(row))
        involved = [r.name for r, v in others if bad(v / ref_value)]
        direction = " (going backward)" if backward else ""
        limit = th.vanishing if kind == "vanishing" else th.exploding
        message = (
            f"{what} {verb} from {_fmt(ref_value)} at {_where(reference)} to {_fmt(value)} at "
            f"{_where(row)}{direction}: x{_fmt(ratio)}, about x{_fmt(per_layer)} per layer "
            f"({len(involved)} layer{'s' if len(involved) != 1 else ''} beyond x{_fmt(limit)})"
        )
        numbers = {
            "reference": ref_value,
            "value": value,
            "ratio": ratio,
            "per_layer": per_layer,
            "reference_layer": reference.layer,
            "layer": row.layer,
        }
        found.append(Verdict(kind, involved, message, numbers, signal))
    return found


def _rate(
    series: list[tuple[LayerStats, float]],
    reference: LayerStats,
    row: LayerStats,
    ref_value: float,
    value: float,
    steps: int,
) -> float:
    """Factor per layer between ``reference`` and ``row``: ``exp(slope)`` of a least-squares
    fit of ``log(value)`` against the distance from ``reference``, over the layers in between
    with a positive finite value (robust to one odd layer and to values flushed to zero);
    the plain ``(value / ref) ** (1 / steps)`` when fewer than three such layers."""
    low, high = sorted((reference.layer, row.layer))
    points = [
        (abs(r.layer - reference.layer), math.log(v))
        for r, v in series
        if low <= r.layer <= high and v > 0 and math.isfinite(v)
    ]
    if len(points) >= 3:
        n = len(points)
        mx = sum(p[0] for p in points) / n
        my = sum(p[1] for p in points) / n
        sxx = sum((p[0] - mx) ** 2 for p in points)
        if sxx > 0:
            return math.exp(sum((p[0] - mx) * (p[1] - my) for p in points) / sxx)
    return (value / ref_value) ** (1 / steps) if value > 0 else 0.0


def _signal_verdicts(weighted: list[LayerStats], th: Thresholds) -> list[Verdict]:
    found: list[Verdict] = []
    forward = [(row, row.rms) for row in weighted if row.rms is not None]
    forward_broken = False
    if len(forward) >= 2:
        bad = [row for row, v in forward if not math.isfinite(v)]
        if bad:
            forward_broken = True
            first = bad[0]
            ref_row, ref = forward[0]
            finite = [(r, v) for r, v in forward if math.isfinite(v)]
            top_row, top = max(finite, key=lambda rv: rv[1]) if finite else (ref_row, ref)
            found.append(
                Verdict(
                    "exploding",
                    [r.name for r in bad],
                    f"activations overflow: rms grows from {_fmt(ref)} at {_where(ref_row)} to "
                    f"{_fmt(top)} at {_where(top_row)}, and outputs are non-finite (inf/nan) from "
                    f"{_where(first)} on ({len(bad)} layers)",
                    {
                        "reference": ref,
                        "value": top,
                        "layer": top_row.layer,
                        "first_nonfinite_layer": first.layer,
                    },
                    "activations",
                )
            )
        elif forward[0][1] > 0:
            found += _ratio_verdicts(
                forward,
                forward[0][0],
                forward[0][1],
                th,
                "activation rms",
                "activations",
                backward=False,
            )
    backward = [(row, row.grad_output) for row in weighted if row.grad_output is not None]
    if len(backward) >= 2 and not forward_broken:
        bad = [row for row, v in backward if not math.isfinite(v)]
        ref_row, ref = backward[-1]
        if bad:
            found.append(
                Verdict(
                    "exploding",
                    [r.name for r in bad],
                    f"gradients are non-finite (inf/nan) at {len(bad)} layers, first going "
                    f"backward at {_where(bad[-1])}",
                    {"layers": len(bad)},
                    "gradients",
                )
            )
        elif ref > 0:
            found += _ratio_verdicts(
                backward, ref_row, ref, th, "gradient norm ||dL/dy||", "gradients", backward=True
            )
    return found


def _verdicts(rows: list[LayerStats], th: Thresholds) -> list[Verdict]:
    found: list[Verdict] = []
    weighted = [row for row in rows if row.weighted]

    symmetric = [
        row
        for row in weighted
        if row.identical is not None and row.identical >= th.symmetric * row.weight_rows
    ]  # type: ignore[operator]
    if symmetric:
        worst = max(symmetric, key=lambda r: r.identical / r.weight_rows)  # type: ignore[operator]
        names = _unique([r.name for r in symmetric])
        found.append(
            Verdict(
                "symmetric",
                names,
                f"{len(names)} of {len(_unique([r.name for r in weighted]))} weight layers have "
                f"identical units (e.g. {worst.identical} of {worst.weight_rows} rows of "
                f"{worst.name}'s weight are equal): zero or constant init; identical units "
                f"compute the same function and get the same gradient, so training never "
                f"tells them apart",
                {"layers": len(names), "max_fraction": worst.identical / worst.weight_rows},  # type: ignore[operator]
            )
        )
    symmetric_layers = {r.layer for r in symmetric}

    dead = [
        row
        for row in rows
        if row.dead_fraction is not None
        and row.dead_fraction >= th.dead
        and row.layer not in symmetric_layers
        and _finite(row)  # inf/nan outputs are the exploding verdict's
    ]
    if dead:
        fractions = [r.dead_fraction for r in dead]
        worst = max(dead, key=lambda r: r.dead_fraction)  # type: ignore[arg-type,return-value]
        total = sum(1 for r in rows if r.dead_fraction is not None)
        found.append(
            Verdict(
                "dead",
                [r.name for r in dead],
                f"in {len(dead)} of {total} ReLU-family layers at least {_pct(th.dead)} of the "
                f"units output <= 0 for the whole batch "
                f"(mean {_pct(sum(fractions) / len(fractions))}, "  # type: ignore[arg-type]
                f"{worst.dead} of {worst.units} in {worst.name}): they pass no gradient; look for "
                f"large negative biases or too large weights",
                {
                    "layers": len(dead),
                    "mean_fraction": sum(fractions) / len(fractions),  # type: ignore[arg-type]
                    "max_fraction": worst.dead_fraction,
                },  # type: ignore[dict-item]
            )
        )

    saturated = [
        row
        for row in rows
        if row.saturated is not None and row.saturated >= th.saturated and _finite(row)
    ]
    if saturated:
        fractions = [r.saturated for r in saturated]
        worst = max(saturated, key=lambda r: r.saturated)  # type: ignore[arg-type,return-value]
        total = sum(1 for r in rows if r.saturated is not None)
        found.append(
            Verdict(
                "saturated",
                [r.name for r in saturated],
                f"in {len(saturated)} of {total} tanh/sigmoid layers at least {_pct(th.saturated)} "
                f"of the outputs are saturated (mean {_pct(sum(fractions) / len(fractions))}, "  # type: ignore[arg-type]
                f"max {_pct(worst.saturated)} in {worst.name}): their local gradient is near 0; "  # type: ignore[arg-type]
                f"the weights are too large for the activation",
                {
                    "layers": len(saturated),
                    "mean_fraction": sum(fractions) / len(fractions),  # type: ignore[arg-type]
                    "max_fraction": worst.saturated,
                },  # type: ignore[dict-item]
            )
        )

    found += _signal_verdicts(weighted, th)
    found.sort(key=lambda v: KINDS.index(v.kind))
    if not found:
        found.append(_healthy(weighted, th))
    return found


def _healthy(weighted: list[LayerStats], th: Thresholds) -> Verdict:
    parts = []
    forward = [r.rms for r in weighted if r.rms is not None]
    if len(forward) >= 2 and forward[0]:
        parts.append(
            f"activation rms stays within x{_fmt(min(forward) / forward[0])} to "
            f"x{_fmt(max(forward) / forward[0])} of layer 1's {_fmt(forward[0])}"
        )
    grads = [r.grad_output for r in weighted if r.grad_output is not None]
    if len(grads) >= 2 and grads[-1]:
        parts.append(
            f"gradient norm within x{_fmt(min(grads) / grads[-1])} to "
            f"x{_fmt(max(grads) / grads[-1])} of the last layer's"
        )
    parts.append("no saturated, dead or identical units beyond the thresholds")
    numbers = {}
    if len(forward) >= 2 and forward[0]:
        numbers["min_ratio"] = min(forward) / forward[0]
        numbers["max_ratio"] = max(forward) / forward[0]
    return Verdict("healthy", _unique([r.name for r in weighted]), "; ".join(parts), numbers)


def _finite(row: LayerStats) -> bool:
    return row.mean is not None and math.isfinite(row.mean) and math.isfinite(row.std or 0.0)


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
