"""The doctor's table: one :class:`~initlab.diagnosis.LayerStats` row per recorded module call.

:func:`_build_rows` turns the statistics the probe (:mod:`initlab.doctor.probe`) synced to the
host into rows: for an output of ``n`` elements with sum ``S``, sum of squares ``Q`` (or its
root, ``norm``), min ``low`` and max ``high``:

- ``mean = S / n``, ``rms = sqrt(Q / n)``, ``std = sqrt(rms^2 - mean^2)`` (population), computed
  scaled by ``max(rms, |mean|)`` so that squares of huge finite values do not overflow; exactly
  0 when ``low == high``;
- ``zeros = 1 - nonzero / n``; ``saturated = count / n``; ``dead = units - alive``;
- ``input_rms`` of a weight layer: the rms of the call that produced its input (``source``), or
  its own input norm ``/ sqrt(numel)``; of a ReLU-family call: the rms of the call that produced
  its input, when one was recorded;
- ``forks``: more than one op consumed the output (see ``_Probe._mark_forks``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from initlab.doctor.diagnosis import LayerStats
from initlab.doctor.probe import _Call, _unit_rows, _weight_of


def _norm(values: dict[str, float]) -> float | None:
    """``sqrt(sum x^2)`` from a call's synced values (``norm`` or ``sumsq``)."""
    if "norm" in values:
        return values["norm"]
    if "sumsq" in values:
        return math.sqrt(values["sumsq"]) if not math.isnan(values["sumsq"]) else math.nan
    return None


def _std(mean: float, rms: float) -> float:
    scale = max(rms, abs(mean))
    if math.isnan(rms) or math.isnan(mean):
        return math.nan
    if math.isinf(scale):  # the sum of squares overflowed: at least huge
        return math.inf
    if scale > 0:  # scaled: squares of finite 1e160s must not overflow
        return scale * math.sqrt(max((rms / scale) ** 2 - (mean / scale) ** 2, 0.0))
    return 0.0


def _recurrent(row: LayerStats, values: dict[str, float]) -> None:
    """Gates of a recurrent layer (:mod:`initlab.doctor.recurrent`): ``gates`` the saturated
    fraction per gate, ``saturated`` that of the most saturated gate (the verdict's measure),
    and ``time_gain`` the gradient through time per step,
    ``(||dL/dh_1|| / ||dL/dh_T||) ** (1 / (T - 1))``."""
    gates = {k.partition(":")[2]: v for k, v in values.items() if k.startswith("gate:")}
    if not gates:
        return
    row.gates = gates
    row.saturated = max(gates.values())
    first, last = values.get("time_first"), values.get("time_last")
    steps = values.get("time_steps")
    if first is not None and last and steps and steps > 1:
        row.time_gain = (first / last) ** (1.0 / (steps - 1))


def _input_rms(call: _Call) -> float | None:
    values = call.values
    if call.source is not None:
        norm = _norm(call.source.values)
        if norm is not None and call.source.numel:
            return norm / math.sqrt(call.source.numel)
    if "in_norm" in values and values.get("in_numel"):
        return values["in_norm"] / math.sqrt(values["in_numel"])
    return None


def _build_rows(
    calls: Sequence[_Call], per_weight: dict[int, dict[str, float]]
) -> list[LayerStats]:
    rows: list[LayerStats] = []
    seen: dict[str, int] = {}
    layer = 0
    for index, call in enumerate(calls):
        seen[call.name] = seen.get(call.name, 0) + 1
        name = call.name if seen[call.name] == 1 else f"{call.name}#{seen[call.name]}"
        weight = per_weight.get(id(call.module))
        weighted = weight is not None and "weight_norm" in weight
        if weighted:
            layer += 1
        row = LayerStats(
            index=index + 1,
            name=name,
            module=type(call.module).__name__,
            layer=layer,
            shape=call.shape,
            weighted=weighted,
            samples=call.samples,
        )
        values = call.values
        if "sum" in values:
            n = call.numel
            row.mean = values["sum"] / n
            if values["low"] == values["high"]:
                row.std = 0.0  # constant output: exact, whatever the rounding of the sums
            else:
                row.std = _std(row.mean, _norm(values) / math.sqrt(n))  # type: ignore[operator]
            row.zeros = 1.0 - values["nonzero"] / n
            if "saturated" in values:
                row.saturated = values["saturated"] / n
            if "alive" in values and call.shape is not None:
                row.units = call.shape[1] if call.axis == 1 else call.shape[-1]
                row.dead = row.units - int(values["alive"])
        _recurrent(row, values)
        row.grad_output = values.get("grad_output")
        if "grad_sumsq" in values:
            row.grad_output = math.sqrt(values["grad_sumsq"])
        row.chain = call.chain
        row.forks = call.forks
        if "in_numel" in values or call.source is not None:
            row.input_rms = _input_rms(call)
        if weighted:
            row.weight_norm = weight["weight_norm"]  # type: ignore[index]
            row.grad_weight = weight.get("grad_weight")  # type: ignore[union-attr]
            if "identical" in weight:  # type: ignore[operator]
                row.identical = int(weight["identical"])  # type: ignore[index]
            row.weight_zero = row.weight_norm == 0
            row.weight_rows = _unit_rows(call.module, _weight_of(call.module)).shape[0]  # type: ignore[arg-type]
        rows.append(row)
    return rows
