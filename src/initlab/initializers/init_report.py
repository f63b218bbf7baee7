"""What :func:`initlab.init_model` did, per parameter: :class:`InitRow` and :class:`InitReport`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from initlab._core.table import format_table


@dataclass
class InitRow:
    """What ``init_model`` did to one parameter (or one gate/projection block of it).

    ``action``: ``rule``, ``norm``, ``bias``, ``weight``, ``tied`` or ``keep``;
    ``activation_source``: how the activation after the layer was found (``trace``,
    ``measured``, ``sequential``, ``fx``, ``order``, ``layer``, ``none``); ``note``: why a
    parameter was kept, which use of a tied tensor decided, a non-default layout, a padding row.
    """

    parameter: str
    shape: tuple[int, ...]
    scheme: str
    action: str
    fan_in: int | None = None
    fan_out: int | None = None
    activation: str | None = None
    activation_source: str | None = None
    gain: float | None = None
    target_std: float | None = None
    realized_std: float | None = None
    note: str | None = None


@dataclass
class InitReport:
    """The per-parameter plan and outcome of :func:`init_model`; ``str()`` is a table."""

    rows: list[InitRow] = field(default_factory=list)
    seed: int | None = None
    activations_found_by: str | None = None  # how activations were found, for the model
    # the input the model was traced on: "given", "hugging face config", "timm input_size",
    # "first layer" (made from the model), "sequential" (not run) or None (fx, order)
    example_source: str | None = None

    _HEADERS = ("parameter", "shape", "scheme", "fan_in", "fan_out", "activation", "found by",
                "gain", "target std", "realized std", "note")  # fmt: skip

    def __str__(self) -> str:
        table = [
            (r.parameter, r.shape, r.scheme, r.fan_in, r.fan_out, r.activation,
             r.activation_source, r.gain, r.target_std, r.realized_std, r.note or "")
            for r in self.rows
        ]  # fmt: skip
        return format_table(self._HEADERS, table)

    def __getitem__(self, parameter: str) -> InitRow:
        for row in self.rows:
            if row.parameter == parameter:
                return row
        raise KeyError(
            f"no row for {parameter!r}; parameters: {', '.join(r.parameter for r in self.rows)}"
        )

    def kept(self) -> dict[str, str]:
        """Parameters left as they were, with the reason: ``{name: note}``."""
        return {r.parameter: r.note or "kept" for r in self.rows if r.action == "keep"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "activations_found_by": self.activations_found_by,
            "example_source": self.example_source,
            "rows": [asdict(r) | {"shape": list(r.shape)} for r in self.rows],
        }
