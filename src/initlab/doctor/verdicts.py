"""The doctor's verdicts: what is wrong with an init, read from per-layer statistics.

Stock models are built from residual branches, normalization layers, gates, attention and
deliberately small output layers; the verdicts judge each weight layer against what it
actually receives, not against layer 1:

- **chains**: weight layers joined by data flow through activations, dropout, pooling and
  reshapes only (see ``_Probe._flow`` in :mod:`initlab.doctor.probe`). A normalization layer
  or a functional op (a residual add, a gate's product, attention, a layer scale) ends a chain,
  so a residual branch is judged against its own input (the skip path), not layer after layer
  along the stream: a ResNet's stream that grows by design, a ConvNeXt layer scale of 1e-6 or
  a squeeze-excite gate are not findings. A plain MLP is one chain: depth is judged as before.
- **vanishing** / **exploding** (activations): within a chain, ``rms_l / rms_first`` below
  ``vanishing`` or above ``exploding`` (the output layer alone is not judged for vanishing);
- **vanishing** / **exploding** (gradients): within a chain, ``||dL/dy_l|| / ||dL/dy_last||``
  (chains whose last gradient is 0, behind a zero output layer, are not judged);
- **vanishing** / **exploding** (weights): a hidden weight layer whose rms row norm
  ``||W|| / sqrt(units)`` (its gain on an uncorrelated input, ``sqrt(fan_in) * std``) is below
  ``vanishing`` or above ``weight_gain``: the scale is wrong whatever follows (behind a batch
  norm it still sets the effective step size, and a norm's ``eps`` lets tiny signals vanish);
- the **output layer** (the last weight layer) is judged by its output: exploding above
  ``output_rms``; small or zero output layers are deliberate (a zero head trains: gradients
  reach it and break the symmetry after one step) and never a finding;
- **saturated**: at least ``saturated`` of a tanh/sigmoid (or hard sigmoid gate) layer's
  outputs are saturated;
- **dead**: at least ``dead`` of a ReLU-family layer's units are dead on the batch and more
  than chance would kill (one-sided binomial test against 1/2, p < 0.01: 6 of 8 units of a
  squeeze-excite bottleneck is not a finding); symmetric layers are left to that verdict;
- **symmetric**: at least ``symmetric`` of a layer's units are identical to another unit
  (a zero output layer alone is not: see above);
- **non-finite**: the loss, an output or a gradient is inf or nan (named by the first layer);
- **healthy**: none of the above.

Every unhealthy verdict says what to change. Every threshold is a field of
:class:`~initlab.diagnosis.Thresholds`. :func:`_verdicts` returns the findings most fundamental
first (the order of :data:`~initlab.diagnosis.KINDS`).
"""

from __future__ import annotations

import math

from initlab._core.table import format_value
from initlab.doctor.diagnosis import KINDS, LayerStats, Thresholds, Verdict
from initlab.doctor.unit_verdicts import (
    _ADVICE,
    _dead_verdict,
    _saturated_verdict,
    _symmetric_rows,
    _symmetric_verdict,
    _unique,
)


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


def _chains(weighted: list[LayerStats]) -> list[list[LayerStats]]:
    chains: dict[int, list[LayerStats]] = {}
    for row in weighted:
        chains.setdefault(row.chain or 0, []).append(row)
    return list(chains.values())


def _bias_dominated(row: LayerStats, th: Thresholds) -> bool:
    """The layer's output is more than ``th.bias_dominated`` times what its weights carry from
    its input (``||W|| / sqrt(units) * rms(input)``): it is mostly the layer's bias."""
    rms, gain, inp = row.rms, row.weight_gain, row.input_rms
    if rms is None or gain is None or inp is None:
        return False
    if not (math.isfinite(rms) and math.isfinite(gain) and math.isfinite(inp)):
        return False
    return rms > th.bias_dominated * gain * inp


def _forward_segments(chain: list[LayerStats], th: Thresholds) -> list[list[LayerStats]]:
    """A chain's weight layers split before every bias-dominated layer: the signal after it
    is the bias's, not the input's, so it is measured afresh from there."""
    segments: list[list[LayerStats]] = []
    for row in chain:
        if not segments or _bias_dominated(row, th):
            segments.append([row])
        else:
            segments[-1].append(row)
    return segments


def _backward_segments(rows: list[LayerStats]) -> list[list[LayerStats]]:
    """Each chain's weight layers split after every fork (a call of the chain whose output
    more than one op consumed): the gradient at a fork sums its consumers' (the skip path's
    with the branch's), so the layers before it are not compared with those after it."""
    segments: dict[tuple[int, int], list[LayerStats]] = {}
    splits: dict[int, int] = {}
    for row in rows:
        if row.chain is None:
            continue
        if row.weighted:
            segments.setdefault((row.chain, splits.get(row.chain, 0)), []).append(row)
        if row.forks:
            splits[row.chain] = splits.get(row.chain, 0) + 1
    return list(segments.values())


def _gated_chains(rows: list[LayerStats], output: LayerStats | None) -> set[int]:
    """Chains that end in a gate: the last call of the chain is a sigmoid or tanh (measured for
    saturation, not a recurrent layer) after a hidden weight layer, and its output leaves
    through a functional op (a squeeze-excite product). The scale of such a chain's weights
    goes no further than the gate, which the saturated verdict judges."""
    last: dict[int, LayerStats] = {}
    last_weighted: dict[int, LayerStats] = {}
    for row in rows:
        if row.chain is not None:
            last[row.chain] = row
            if row.weighted:
                last_weighted[row.chain] = row
    return {
        chain
        for chain, row in last.items()
        if row.saturated is not None
        and row.gates is None
        and not row.weighted
        and last_weighted.get(chain) is not output
    }


def _signal_verdicts(
    rows: list[LayerStats], th: Thresholds, output: LayerStats | None
) -> list[Verdict]:
    """Activation ratios within each chain's forward segments and gradient ratios within its
    backward segments, merged per (kind, signal): the segment with the most extreme ratio
    gives the message and numbers, every segment its layers."""
    found: dict[tuple[str, str], tuple[Verdict, list[str]]] = {}

    def add(verdicts: list[Verdict]) -> None:
        for v in verdicts:
            key = (v.kind, v.signal or "")
            if key not in found:
                found[key] = (v, list(v.layers))
                continue
            best, names = found[key]
            names += [n for n in v.layers if n not in names]
            if v.kind == "exploding":
                worse = v.numbers["ratio"] > best.numbers["ratio"]
            else:
                worse = v.numbers["ratio"] < best.numbers["ratio"]
            found[key] = (v if worse else best, names)

    weighted = [row for row in rows if row.weighted]
    for chain in _chains(weighted):
        for segment in _forward_segments(chain, th):
            forward = [(r, r.rms) for r in segment if r.rms is not None]
            if len(forward) >= 2 and forward[0][1] > 0:  # type: ignore[operator]
                ratios = _ratio_verdicts(
                    forward,  # type: ignore[arg-type]
                    forward[0][0],
                    forward[0][1],  # type: ignore[arg-type]
                    th,
                    "activation rms",
                    "activations",
                    backward=False,
                )
                add([v for v in ratios if not (v.kind == "vanishing" and _only_output(v, output))])
    for segment in _backward_segments(rows):
        backward = [(r, r.grad_output) for r in segment if r.grad_output is not None]
        if len(backward) >= 2:
            ref_row, ref = backward[-1]
            if ref > 0:  # type: ignore[operator]
                add(
                    _ratio_verdicts(
                        backward,  # type: ignore[arg-type]
                        ref_row,
                        ref,  # type: ignore[arg-type]
                        th,
                        "gradient norm ||dL/dy||",
                        "gradients",
                        backward=True,
                    )
                )
    result = []
    for verdict, names in found.values():
        verdict.layers = names
        verdict.message += _ADVICE
        result.append(verdict)
    return result


def _only_output(verdict: Verdict, output: LayerStats | None) -> bool:
    """A vanishing activation verdict that only the output layer triggers: a small output
    layer is deliberate (see the module docstring)."""
    return output is not None and verdict.layers == [output.name]


def _weight_verdicts(
    weighted: list[LayerStats], th: Thresholds, output: LayerStats | None, gated: set[int]
) -> list[Verdict]:
    found: list[Verdict] = []
    hidden = [
        r
        for r in weighted
        if r is not output
        and r.chain not in gated  # a gate ends the chain: its saturation is the finding
        and r.input_rms is not None  # embeddings (integer inputs) have no gain
        and r.weight_gain is not None
        and (r.weight_rows or 0) > 1
        and not r.weight_zero  # zero weights are the symmetric verdict's
    ]
    small = [r for r in hidden if r.weight_gain < th.vanishing]  # type: ignore[operator]
    large = [r for r in hidden if r.weight_gain > th.weight_gain]  # type: ignore[operator]
    if small:
        worst = min(small, key=lambda r: r.weight_gain)  # type: ignore[arg-type,return-value]
        found.append(
            Verdict(
                "vanishing",
                [r.name for r in small],
                f"{len(small)} of {len(hidden)} hidden weight layers scale their input's rms by "
                f"less than x{_fmt(th.vanishing)} (rms row norm ||W||/sqrt(units) "
                f"{_fmt(worst.weight_gain)} at {_where(worst)}): their weights are far too small "  # type: ignore[arg-type]
                f"for their fan-in (a variance-preserving init gives about 1; a normalization "
                f"after them cannot restore a signal smaller than its eps){_ADVICE}",
                {"layers": len(small), "ratio": worst.weight_gain, "layer": worst.layer},  # type: ignore[dict-item]
                "weights",
            )
        )
    if large:
        worst = max(large, key=lambda r: r.weight_gain)  # type: ignore[arg-type,return-value]
        found.append(
            Verdict(
                "exploding",
                [r.name for r in large],
                f"{len(large)} of {len(hidden)} hidden weight layers scale their input's rms by "
                f"more than x{_fmt(th.weight_gain)} (rms row norm ||W||/sqrt(units) "
                f"{_fmt(worst.weight_gain)} at {_where(worst)}): their weights are too large for "  # type: ignore[arg-type]
                f"their fan-in (a variance-preserving init gives about 1 to 1.4; behind a "
                f"normalization the forward pass hides it, but every update is then relatively "
                f"tiny){_ADVICE}",
                {"layers": len(large), "ratio": worst.weight_gain, "layer": worst.layer},  # type: ignore[dict-item]
                "weights",
            )
        )
    rms = None if output is None else output.rms
    if output is not None and rms is not None and math.isfinite(rms) and rms > th.output_rms:
        found.append(
            Verdict(
                "exploding",
                [output.name],
                f"the output layer {_where(output)} gives outputs of rms {_fmt(rms)} (above "
                f"{_fmt(th.output_rms)}): logits this large saturate a softmax and make the "
                f"first loss huge; scale the output layer's init down (LeCun, a small std such "
                f"as 0.01, or zeros)",
                {"ratio": rms, "layer": output.layer},
                "output",
            )
        )
    return found


def _nonfinite_verdict(rows: list[LayerStats], loss: float | None) -> Verdict | None:
    def bad(value: float | None) -> bool:
        return value is not None and not math.isfinite(value)

    forward = [r for r in rows if bad(r.mean) or bad(r.std)]
    backward = [r for r in rows if bad(r.grad_output) or bad(r.grad_weight)]
    if not forward and not backward and not bad(loss):
        return None
    if forward:
        first = forward[0]
        where = f"outputs are inf/nan from {_where(first)} on ({len(forward)} modules)"
        names = [r.name for r in forward]
    elif backward:
        first = backward[-1]
        where = (
            f"the forward pass is finite but gradients are inf/nan at {len(backward)} modules, "
            f"first going backward at {_where(first)}"
        )
        names = [r.name for r in backward]
    else:
        where = "every output is finite but the loss is not"
        names = []
    loss_text = "unknown" if loss is None else _fmt(loss)
    return Verdict(
        "non-finite",
        names,
        f"the loss is {loss_text}; {where}: look at that layer's weights (too large an init "
        f"overflows), the inputs and the loss function; no other statistic can be trusted "
        f"until this is fixed",
        {"loss": math.nan if loss is None else loss},
    )


def _verdicts(rows: list[LayerStats], th: Thresholds, loss: float | None = None) -> list[Verdict]:
    found: list[Verdict] = []
    weighted = [row for row in rows if row.weighted]
    output = weighted[-1] if weighted else None

    nonfinite = _nonfinite_verdict(rows, loss)
    if nonfinite is not None:
        found.append(nonfinite)

    symmetric = _symmetric_rows(weighted, th, output)
    found += _symmetric_verdict(symmetric, weighted)
    found += _dead_verdict(rows, th, {r.layer for r in symmetric})
    found += _saturated_verdict(rows, th)

    if nonfinite is None:
        found += _weight_verdicts(weighted, th, output, _gated_chains(rows, output))
        found += _signal_verdicts(rows, th, output)
    else:
        found += _overflow_verdict(weighted)
    found.sort(key=lambda v: KINDS.index(v.kind))
    if not found:
        found.append(_healthy(weighted, th, output))
    return found


def _overflow_verdict(weighted: list[LayerStats]) -> list[Verdict]:
    """The exploding verdict of activations that grow until they overflow to inf/nan."""
    forward = [(row, row.rms) for row in weighted if row.rms is not None]
    bad = [row for row, v in forward if not math.isfinite(v)]  # type: ignore[arg-type]
    finite = [(r, v) for r, v in forward if math.isfinite(v) and v > 0]  # type: ignore[arg-type,operator]
    if not bad or len(finite) < 2:
        return []
    first = bad[0]
    ref_row, ref = finite[0]
    top_row, top = max(finite, key=lambda rv: rv[1])  # type: ignore[arg-type,return-value]
    if top <= 10 * ref:  # type: ignore[operator]  # no growth: something else broke the outputs
        return []
    return [
        Verdict(
            "exploding",
            [r.name for r in bad],
            f"activations overflow: rms grows from {_fmt(ref)} at {_where(ref_row)} to "  # type: ignore[arg-type]
            f"{_fmt(top)} at {_where(top_row)}, and outputs are non-finite (inf/nan) from "  # type: ignore[arg-type]
            f"{_where(first)} on ({len(bad)} layers){_ADVICE}",
            {
                "reference": ref,  # type: ignore[dict-item]
                "value": top,  # type: ignore[dict-item]
                "layer": top_row.layer,
                "first_nonfinite_layer": first.layer,
            },
            "activations",
        )
    ]


def _healthy(weighted: list[LayerStats], th: Thresholds, output: LayerStats | None) -> Verdict:
    parts = []
    chains = _chains(weighted)
    forward = [r.rms for r in weighted if r.rms is not None]
    numbers = {}
    if len(chains) > 1:
        ratios = [
            r.rms / c[0].rms
            for c in chains
            for r in c
            if r.rms is not None and c[0].rms and r is not output
        ]
        gains = [r.weight_gain for r in weighted if r.weight_gain and r.input_rms is not None]
        parts.append(
            f"{len(weighted)} weight layers in {len(chains)} chains (normalization layers or "
            f"residual adds between them), each judged against its own input"
        )
        if ratios:
            parts.append(
                f"activation rms within x{_fmt(min(ratios))} to x{_fmt(max(ratios))} of each "
                f"chain's first layer"
            )
            numbers["min_ratio"], numbers["max_ratio"] = min(ratios), max(ratios)
        if gains:
            parts.append(
                f"rms row norms ||W||/sqrt(units) {_fmt(min(gains))} to {_fmt(max(gains))}"
            )
    else:
        if len(forward) >= 2 and forward[0]:
            parts.append(
                f"activation rms stays within x{_fmt(min(forward) / forward[0])} to "
                f"x{_fmt(max(forward) / forward[0])} of layer 1's {_fmt(forward[0])}"
            )
            numbers["min_ratio"] = min(forward) / forward[0]
            numbers["max_ratio"] = max(forward) / forward[0]
        grads = [r.grad_output for r in weighted if r.grad_output is not None]
        if len(grads) >= 2 and grads[-1]:
            parts.append(
                f"gradient norm within x{_fmt(min(grads) / grads[-1])} to "
                f"x{_fmt(max(grads) / grads[-1])} of the last layer's"
            )
    if output is not None and output.weight_zero:
        parts.append(
            f"the output layer {output.name} is zero-initialised (deliberate: gradients reach it "
            f"and break the symmetry after one step; layers before it get zero gradient until "
            f"then)"
        )
    parts.append("no saturated, dead or identical units beyond the thresholds")
    return Verdict("healthy", _unique([r.name for r in weighted]), "; ".join(parts), numbers)
