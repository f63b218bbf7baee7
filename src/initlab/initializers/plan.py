""":func:`initlab.init_model`'s plan: per parameter, the scheme it gets, its layout, fans and
activation per block, the report rows, and the fill that will write it (nothing is drawn here).

A :class:`Planner` is made once per call with the validated options; ``add(module_name,
module, name, param)`` plans one parameter (tied ones once), ``run()`` writes every value.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from initlab._core.rng import parallel_map
from initlab._core.table import format_table
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
    found: Discovery
    rows: list[InitRow] = field(default_factory=list)
    fills: list[_Fill] = field(default_factory=list)
    measured: list[int] = field(default_factory=list)  # indices of rows whose std is measured
    exact_zero_std: list[int] = field(default_factory=list)  # rows of constants: std exactly 0
    # (value, device, dtype) -> the 1-D parameters set to that constant (biases, norm scales)
    constants: dict[tuple[Any, ...], list[torch.Tensor]] = field(default_factory=dict)
    _seen: dict[int, str] = field(default_factory=dict)  # id -> first name (tied parameters)
    _plans: dict[tuple[Any, ...], tuple[float, float | None]] = field(default_factory=dict)
    _spec_text: dict[int, str] = field(default_factory=dict)  # id(scheme) -> str(scheme)
    _fan_cache: dict[tuple[Any, ...], list[FanChunk] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # summed embedding -> the embedding of its group whose scale it takes
        self._summed: dict[str, str] = {}
        if self.found.flow is not None:
            for group in self.found.flow.summed_embeddings():
                reference = self._reference_embedding(group)
                self._summed.update({name: reference for name in group if name != reference})
        self._owners = _owners(self.model)
        self._zero_centred = _zero_centred_detector()

    def _reference_embedding(self, group: list[str]) -> str:
        """The embedding whose scale summed embeddings share: one tied to an output layer
        (initialized for the logits), else the one with the most rows (the tokens)."""
        owners = _owners(self.model)
        tables = {name: self.model.get_submodule(name).weight for name in group}
        tied = [name for name, table in tables.items() if id(table) in owners]
        if tied:
            return tied[0]
        return max(group, key=lambda name: tables[name].shape[0])

    def _summed_plan(
        self, module_name: str, rows: int
    ) -> tuple[list[FanChunk] | None, Any, str] | None:
        """For an embedding summed with others: the fans and activation of its group's
        reference embedding (as that one is planned: a tied table by its output use), so that
        token, position and type embeddings start at one scale; ``None`` for the others."""
        reference = self._summed.get(module_name)
        if reference is None:
            return None
        table = self.model.get_submodule(reference).weight
        uses = self._owners.get(id(table))
        ref_name, ref_module, ref_attr = (
            _deciding_use(uses)[0] if uses else (reference, self.model.get_submodule(reference),
                                                 "weight")
        )  # fmt: skip
        layout = weight_layout(ref_module, ref_attr, table, self.layouts, self.found.flow)
        view = table.t() if layout == "in_out" else table
        chunks = parameter_fans(ref_module, ref_attr, view)
        if not chunks:
            return None
        fans = [FanChunk(0, rows, chunks[0].fan_in, chunks[0].fan_out)]
        note = (
            f"summed with {reference}.weight: planned with its fans and activation "
            "(summed embeddings share one scale)"
        )
        return fans, self.found.activations.get(ref_name), note

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
        rows = self.rows
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
            if param.numel() >= 2:
                self.exact_zero_std.append(len(rows))
            rows.append(InitRow(
                qualified, shape, self._text(chosen), action, target_std=0.0,
                note="; ".join(notes) or None,
            ))  # fmt: skip
            return
        if self.rng == "torch" and is_dtensor(param):
            raise ValueError(
                f"rng='torch' cannot initialize DTensor parameters ({qualified}): torch's "
                "generators give each shard its own stream, so values change with the "
                "sharding; use rng='counter'"
            )
        fill = _Fill(0, param.device, [], rng=self.rng, name=qualified)  # seeded by run()
        if action in ("weight", "rule") and (tie_note or isinstance(module, _EMBEDDINGS)):
            padding = _padding_rows(uses)
            if padding:
                fill.zero_rows = (param, padding)
                notes.append(f"padding row{'s' if len(padding) > 1 else ''} "
                             f"{', '.join(map(str, padding))} kept at zero")  # fmt: skip
        following = self.found.activations.get(use_module_name)
        if action == "weight" and isinstance(use_module, _EMBEDDINGS) and self._summed:
            summed = self._summed_plan(use_module_name, view.shape[0])
            if summed is not None:
                chunks, following, summed_note = summed
                notes.append(summed_note)
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
        use_module_name, use_module, use_name = use
        own_weight = use_module._parameters.get("weight")
        flow = self.found.flow
        return _decide(
            self.rules, qualified, use_module, use_name, param, self.weight_scheme, self.bias,
            own_weight, self._zero_centred,
            None if flow is None else lambda: flow.residual(use_module_name),
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
            self.measured.append(len(self.rows))
            self.rows.append(row)
            fill.blocks.append((label, target, chosen, fans, act))

    # ------------------------------------------------------------------ values
    def run(self, seed: int, parallel_numel: int, *, copy_rows: bool = True) -> InitReport:
        """Write every planned value from ``seed``: small counter-stream fills batched, the
        others one task per parameter (on threads for CPU models of at least
        ``parallel_numel`` elements; each parameter has its own stream, so threads do not
        change the values), constants together; then the realized stds, measured together.
        Runs as often as asked (a plan applied with several seeds); ``copy_rows=False`` lets
        the report take the plan's own rows (once, when nobody keeps the plan)."""
        derive = _seed_deriver(seed)
        for fill in self.fills:
            fill.seed = seed if fill.rng == "counter" else derive(fill.name)
            fill.stds = []
        # A plan kept by its caller keeps its own rows; init_model's is discarded: no copies.
        rows = [copy.copy(row) for row in self.rows] if copy_rows else self.rows
        report = InitReport(rows, seed, self.found.source, self.found.example_source)
        for index in self.exact_zero_std:
            rows[index].realized_std = 0.0
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
            measured = [report.rows[i] for i in self.measured]
            _record_stds(measured, [s for f in self.fills for s in f.stds])
        return report


_PLAN_HEADERS = ("parameter", "shape", "action", "scheme", "fan_in", "fan_out", "activation",
                 "found by", "gain", "target std", "reason")  # fmt: skip


@dataclass
class InitPlan:
    """What :func:`~initlab.apply_plan` will do to each parameter of one model, decided but
    not drawn: :func:`~initlab.plan_init`'s result.

    One row per parameter (per gate or projection block for fused layers): ``action`` (what
    decided it: ``weight``, ``bias``, ``norm`` and ``rule`` are filled, ``keep`` is left as
    it is, ``tied`` is filled once through its first name), the scheme, the fans and how the
    layer uses its weight, the activation after the layer and how it was found, the gain and
    the target std, and the reason in words (``note``). ``str()`` is a table; ``to_dict()``
    and ``to_json()`` hold the same. ``example_source`` says which input the model was traced
    on (``given``, ``hugging face config``, ``timm input_size``, ``first layer``) or
    ``None`` when nothing ran (fx or registration order: see ``activations_found_by``).
    """

    rows: list[InitRow]
    rng: str
    activations_found_by: str | None
    example_source: str | None
    _planner: Planner = field(repr=False, compare=False)

    @property
    def model(self) -> nn.Module:
        """The model this plan was made for."""
        return self._planner.model

    def __str__(self) -> str:
        table = [
            (r.parameter, r.shape, r.action, r.scheme, r.fan_in, r.fan_out, r.activation,
             r.activation_source, r.gain, r.target_std, r.note or "")
            for r in self.rows
        ]  # fmt: skip
        return format_table(_PLAN_HEADERS, table)

    def __getitem__(self, parameter: str) -> InitRow:
        for row in self.rows:
            if row.parameter == parameter:
                return row
        raise KeyError(f"no row for {parameter!r} in this plan")

    def kept(self) -> dict[str, str]:
        """Parameters the plan leaves as they are, with the reason: ``{name: note}``."""
        return {r.parameter: r.note or "kept" for r in self.rows if r.action == "keep"}

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for row in self.rows:
            entry = asdict(row) | {"shape": list(row.shape)}
            entry.pop("realized_std")
            rows.append(entry)
        return {
            "rng": self.rng,
            "activations_found_by": self.activations_found_by,
            "example_source": self.example_source,
            "rows": rows,
        }

    def to_json(self, **kwargs: Any) -> str:
        """``to_dict()`` as JSON text (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)
