"""The vocabulary of parameter roles (:data:`ROLES`) and the table that
:func:`~initlab.initializers.roles.roles` returns: one :class:`RoleRow` per parameter (role,
block, fans, residual, chunks of fused tensors), gathered in a :class:`RoleTable` whose
``str()`` is a table and ``to_dict()`` plain data. How the roles are found is in
:mod:`initlab.initializers.roles`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from initlab._core.table import format_table

# Role -> what it means. The keys are the vocabulary of recipes and of ``overrides``.
ROLES: dict[str, str] = {
    "embedding": "token embedding (an output head tied to it shares the tensor)",
    "position_embedding": "learned position (or segment) embedding",
    "attn_qkv": "fused query/key/value projection (GPT-2 c_attn, MHA in_proj_weight)",
    "attn_q": "query projection",
    "attn_k": "key projection",
    "attn_v": "value projection",
    "attn_out": "attention output projection (writes into the residual stream)",
    "mlp_in": "MLP input projection (no gate)",
    "mlp_gate": "gated MLP: gate projection (Llama gate_proj, OLMo-core w1)",
    "mlp_up": "gated MLP: up projection (Llama up_proj, OLMo-core w3)",
    "mlp_down": "MLP output projection (writes into the residual stream)",
    "head": "output head (vocabulary logits)",
    "classifier": "final linear layer of a classifier",
    "linear": "other linear layer",
    "norm_scale": "normalization scale (1, or 0 where the forward uses 1 + w)",
    "norm_shift": "normalization shift",
    "norm_branch_out": "scale of the last normalization in a residual branch (CNN)",
    "conv_stem": "convolution before the first block",
    "conv_body": "convolution inside a block or between blocks",
    "conv_branch_out": "last convolution of a residual branch",
    "conv_shortcut": "convolution on a residual shortcut (downsample)",
    "branch_scale": "scalar or per-channel multiplier of a residual branch (Fixup scale, "
    "ReZero/SkipInit alpha, layer scale)",
    "scalar_bias": "scalar bias (Fixup)",
    "rel_attn_bias": "relative attention bias table (T5)",
    "bias": "bias of a layer (the 'of' column names the layer's role)",
    "other": "unknown role: recipes keep its value",
}


@dataclass(frozen=True)
class Chunk:
    """A slice ``[start, stop)`` along ``dim`` of a fused parameter with its own role."""

    role: str
    dim: int
    start: int
    stop: int


@dataclass
class RoleRow:
    """The role of one parameter (tied parameters get one row per name)."""

    parameter: str
    shape: tuple[int, ...]
    role: str
    module_type: str
    source: str
    block: int | None = None
    n_blocks: int | None = None
    stack: str | None = None
    fan_in: int | None = None
    fan_out: int | None = None
    of: str | None = None  # for biases: the role of the layer's weight
    residual: bool | None = None  # writes into the residual stream (dataflow), if known
    zero_centered: bool | None = None  # norms: forward uses (1 + w)
    tied_to: str | None = None
    chunks: tuple[Chunk, ...] = ()


@dataclass
class RoleTable:
    """Every parameter's role; ``str()`` is a table, ``to_dict()`` plain data.

    ``dims`` holds what recipes need from the model: ``d`` (model width), ``d_ff``, ``vocab``,
    ``n_heads``, ``d_kv``, and, per stack, its block count (``stacks``).
    """

    rows: list[RoleRow] = field(default_factory=list)
    dims: dict[str, float] = field(default_factory=dict)
    stacks: dict[str, int] = field(default_factory=dict)
    dataflow: bool = False

    _HEADERS = ("parameter", "shape", "role", "of", "block", "residual", "source", "type")

    def __str__(self) -> str:
        table = []
        for r in self.rows:
            role = r.role + (" (1+w)" if r.zero_centered else "")
            if r.tied_to:
                role += f" (tied to {r.tied_to})"
            if r.chunks:
                role += " [" + ", ".join(c.role for c in r.chunks) + "]"
            block = None if r.block is None else f"{r.block}/{r.n_blocks}"
            table.append((r.parameter, r.shape, role, r.of, block, r.residual, r.source,
                          r.module_type))  # fmt: skip
        dims = ", ".join(f"{k}={_num(v)}" for k, v in self.dims.items())
        stacks = ", ".join(f"{k}: L={v}" for k, v in self.stacks.items()) or "none"
        how = "data flow + names" if self.dataflow else "names and types (no example input)"
        return (
            format_table(self._HEADERS, table)
            + f"\n\nmodel: {dims}\nblock stacks: {stacks}\nroles from: {how}"
        )

    def __getitem__(self, parameter: str) -> RoleRow:
        for row in self.rows:
            if row.parameter == parameter:
                return row
        raise KeyError(f"no parameter {parameter!r}; parameters: "
                       f"{', '.join(r.parameter for r in self.rows)}")  # fmt: skip

    def by_role(self, role: str) -> list[RoleRow]:
        """The rows whose role (or one of whose chunks' role) is ``role``."""
        return [r for r in self.rows if r.role == role or any(c.role == role for c in r.chunks)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dims": dict(self.dims),
            "stacks": dict(self.stacks),
            "dataflow": self.dataflow,
            "rows": [
                asdict(r) | {"shape": list(r.shape), "chunks": [asdict(c) for c in r.chunks]}
                for r in self.rows
            ],
        }


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
