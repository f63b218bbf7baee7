""":func:`initlab.init_model`'s plan: per parameter, the scheme it gets, its layout, fans and
activation per block, the report rows, and the fill that will write it (nothing is drawn here).

A :class:`Planner` is made once per call with the validated options; ``add(module_name,
module, name, param)`` plans one parameter (tied ones once), ``run()`` writes every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab._core.rng import parallel_map
from initlab.initializers.activations import Discovery
from initlab.initializers.decisions import _EMBEDDINGS, RuleKey, _decide, _zero_centred_detector
from initlab.initializers.fans import FanChunk, parameter_fans, weight_layout
from initlab.initializers.fill import _block, _Fill, _record_stds, _seed_deriver, fill_batched
from initlab.initializers.init_report import InitReport, InitRow
from initlab.initializers.schemes import Constant, Initializer
from initlab.initializers.sharded import is_dtensor
from initlab.initializers.tied import _deciding_use, _owners, _padding_rows, _tied_rule

Use = tuple[str, nn.Module, str]  # (module name, module, attribute) holding a parameter


@dataclass
class Planner:
    """The options of one :func:`init_model` call and what planning has gathered so far."""

    model: nn.Module
    weight_scheme: Initializer
    bias: Any
    rules: dict[RuleKey, Initializer | str]
    layouts: dict[str | type, str]
    rng: str
    seed: int
    found: Discovery
    report: InitReport = field(init=False)
    fills: list[_Fill] = field(default_factory=list)
    measured: list[InitRow] = field(default_factory=list)
    # (value, device, dtype) -> the 1-D parameters set to that constant (biases, norm scales)
    constants: dict[tuple[Any, ...], list[torch.Tensor]] = field(default_factory=dict)
    _seen: dict[int, str] = field(default_factory=dict)  # id -> first name (tied parameters)
    _plans: dict[tuple[Any, ...], tuple[float, float | None]] = field(default_factory=dict)
    _spec_text: dict[int, str] = field(default_factory=dict)  # id(scheme) -> str(scheme)
    _fan_cache: dict[tuple[Any, ...], list[FanChunk] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.report = InitReport(seed=self.seed, activations_found_by=self.found.source)
        self._owners = _owners(self.model)
        self._zero_centred = _zero_centred_detector()
        self._derive = _seed_deriver(self.seed)

    def _text(self, scheme: Initializer) -> str:
        text = self._spec_text.get(id(scheme))
        if text is None:
            text = self._spec_text[id(scheme)] = str(scheme)
        return text

    # ------------------------------------------------------------------ one parameter
    def add(self, module_name: str, module: nn.Module, name: str, param: torch.Tensor) -> None:
        """Plan ``param`` (attribute ``name`` of ``module``): a report row per block and, unless
        kept, tied or constant, a fill."""
        qualified = f"{module_name}.{name}" if module_name else name
        shape = tuple(param.shape)
        rows = self.report.rows
        if id(param) in self._seen:
            rows.append(InitRow(qualified, shape, f"tied to {self._seen[id(param)]}", "tied"))
            return
        self._seen[id(param)] = qualified
        uses = self._owners.get(id(param))
        if uses is None:  # not tied: the common case, kept cheap (models of many layers)
            use, tie_note, uses = (module_name, module, name), None, [(module_name, module, name)]
        else:
            use, tie_note = _deciding_use(uses)
        chosen, action, note = self._decide(qualified, use, uses, param, tie_note)
        if chosen is None or chosen == "keep":
            rows.append(InitRow(qualified, shape, "kept", "keep", note=note))
            return
        assert isinstance(chosen, Initializer)
        use_module_name, use_module, use_name = use
        layout = (
            weight_layout(use_module, use_name, param, self.layouts, self.found.flow)
            if param.dim() == 2 and use_name == "weight"
            else "out_in"
        )
        view = param.t() if layout == "in_out" else param
        notes = [n for n in (tie_note, note) if n]
        if layout == "in_out":
            notes.append(f"{type(use_module).__name__} stores (in, out)")
        chunks = self._chunks(chosen, use_module, use_name, view, qualified, shape)
        if isinstance(chosen, Constant) and param.dim() <= 1 and not is_dtensor(param):
            # biases, norm scales: no generator, filled together by run(); std exactly 0
            self.constants.setdefault((chosen.value, param.device, param.dtype), []).append(param)
            rows.append(InitRow(
                qualified, shape, self._text(chosen), action, target_std=0.0,
                realized_std=0.0 if param.numel() >= 2 else None, note="; ".join(notes) or None,
            ))  # fmt: skip
            return
        if self.rng == "torch" and is_dtensor(param):
            raise ValueError(
                f"rng='torch' cannot initialize DTensor parameters ({qualified}): torch's "
                "generators give each shard its own stream, so values change with the "
                "sharding; use rng='counter'"
            )
        seed = self.seed if self.rng == "counter" else self._derive(qualified)
        fill = _Fill(seed, param.device, [], rng=self.rng, name=qualified)
        if action in ("weight", "rule") and (tie_note or isinstance(module, _EMBEDDINGS)):
            padding = _padding_rows(uses)
            if padding:
                fill.zero_rows = (param, padding)
                notes.append(f"padding row{'s' if len(padding) > 1 else ''} "
                             f"{', '.join(map(str, padding))} kept at zero")  # fmt: skip
        following = self.found.activations.get(use_module_name)
        self._add_blocks(fill, chosen, action, view, chunks, following, qualified, layout, notes)
        self.fills.append(fill)

    def _decide(
        self, qualified: str, use: Use, uses: list[Use], param: torch.Tensor, tie_note: str | None
    ) -> tuple[Initializer | str | None, str, str | None]:
        """Scheme, action and note: a rule naming any use of a tied tensor applies to it."""
        if tie_note and self.rules:
            tied_rule = _tied_rule(self.rules, uses)
            if tied_rule is not None:
                return tied_rule, "rule", None
        _, use_module, use_name = use
        own_weight = use_module._parameters.get("weight")
        return _decide(
            self.rules, qualified, use_module, use_name, param, self.weight_scheme, self.bias,
            own_weight, self._zero_centred,
        )  # fmt: skip

    def _chunks(
        self, chosen: Initializer, module: nn.Module, name: str, view: torch.Tensor,
        qualified: str, shape: tuple[int, ...],
    ) -> list[FanChunk] | None:  # fmt: skip
        """The fan blocks of ``view`` (one per LSTM gate or q/k/v projection, else one), cached
        by layer type, parameter, shape, groups and mode; ``None`` for < 2-D parameters."""
        chunks: list[FanChunk] | None = None
        if chosen.uses_fans or view.dim() >= 2:
            attributes = module.__dict__
            key = (type(module), name, tuple(view.shape), attributes.get("groups"),
                   attributes.get("mode"))  # fmt: skip
            if isinstance(module, nn.RNNBase | nn.MultiheadAttention):
                chunks = parameter_fans(module, name, view)
            elif key in self._fan_cache:
                chunks = self._fan_cache[key]
            else:
                chunks = self._fan_cache[key] = parameter_fans(module, name, view)
        if chosen.uses_fans and chunks is None:
            raise ValueError(
                f"{qualified} has shape {shape}: {chosen.name} needs fans (>= 2 dims); "
                f"give it a rule with a scheme that needs none (zeros, normal, uniform)"
            )
        return chunks

    def _add_blocks(
        self, fill: _Fill, chosen: Initializer, action: str, view: torch.Tensor,
        chunks: list[FanChunk] | None, following: Any, qualified: str, layout: str,
        notes: list[str],
    ) -> None:  # fmt: skip
        """One report row and one fill block per fan block (the whole parameter, or each gate
        or projection), with its fans, activation and target std."""
        whole = chunks is None or len(chunks) == 1
        for chunk in chunks or [None]:
            whole_chunk = chunk is None or (whole and chunk.start == 0)
            if self.rng == "counter":
                target = _block(self.rng, view, chunk)
            else:
                target = view if whole_chunk else view[chunk.start : chunk.stop]
            act, source = None, None
            if chunk is not None and chunk.activation is not None:
                act, source = (chunk.activation, None), "layer"
            elif following is not None and action in ("weight", "rule"):
                act, source = following.activation, following.source
            fans = None if chunk is None else (chunk.fan_in, chunk.fan_out)
            label = qualified if whole else f"{qualified}[{chunk.role}]"
            target_shape = target.shape if self.rng == "counter" else tuple(target.shape)
            key = (id(chosen), target_shape, fans, act)
            stds = self._plans.get(key)
            if stds is None:
                try:
                    chosen._check_shape(target_shape)
                    stds = (chosen.target_std(target_shape, fans, act), chosen.gain_for(act))
                except ValueError as error:
                    raise ValueError(f"cannot initialize {label}: {error}") from None
                self._plans[key] = stds
            row_shape = tuple(view.T.shape) if whole_chunk and layout == "in_out" else target_shape
            row = InitRow(
                label, row_shape, self._text(chosen), action,
                None if fans is None else fans[0], None if fans is None else fans[1],
                None if act is None else str(act[0]), source, stds[1], stds[0],
                note="; ".join(notes) or None,
            )  # fmt: skip
            self.report.rows.append(row)
            fill.blocks.append((label, target, chosen, fans, act))
            self.measured.append(row)

    # ------------------------------------------------------------------ values
    def run(self, parallel_numel: int) -> InitReport:
        """Write every planned value: small counter-stream fills batched, the others one task
        per parameter (on threads for CPU models of at least ``parallel_numel`` elements; each
        parameter has its own stream, so threads do not change the values), constants
        together; then the realized stds, measured together."""
        fills = fill_batched(self.fills)
        on_cpu = all(f.device.type == "cpu" for f in fills)
        numel = sum(t.numel() for f in fills for _, t, *_ in f.blocks)
        parallel_map(_Fill.run, fills, workers=None if on_cpu and numel >= parallel_numel else 1)
        with torch.no_grad():
            for (value, device, _), tensors in self.constants.items():
                if device.type != "meta":
                    torch._foreach_zero_(tensors)
                    if value != 0:
                        torch._foreach_add_(tensors, value)
        with torch.no_grad():  # small parameters' stds read the parameters themselves
            _record_stds(self.measured, [s for f in self.fills for s in f.stds])
        return self.report
