"""The role of every parameter of a model: what a training codebase's init recipe keys on.

A recipe (Megatron, GPT-2, OLMo, torchtitan, ...) does not say "Linear layers get 0.02"; it
says "the attention output projection of block ``i`` of ``L`` gets ``0.02 / sqrt(2 L)``".
:func:`roles` finds, for each parameter, that role and block index, so that one recipe applies
to GPT-2, Llama, T5, BERT or a model of your own.

How a role is found, in order (the ``source`` column says which step decided):

1. ``type``: the module's type fixes it -- ``nn.Embedding``, a normalization layer (any class
   whose name contains ``Norm``), ``nn.MultiheadAttention``'s fused ``in_proj_weight`` (one
   block each for q, k, v), a convolution (stem before the first block, shortcut inside a
   ``downsample``/``shortcut`` branch, the last convolution of a residual branch, else body).
2. ``name``: the module's name and its ancestors' names for linear layers (PyTorch ``Linear``
   and Hugging Face's ``Conv1D``): ``q_proj``/``query``/``q``, ``c_attn``/``qkv``, ``o_proj``/
   ``out_proj``/``attention.output.dense``, ``gate_proj``/``w1``, ``up_proj``/``w3``,
   ``c_fc``/``fc1``/``wi``/``intermediate.dense``, ``down_proj``/``c_proj``/``fc2``/``wo``/
   ``output.dense``, ... A linear layer outside the blocks is the output ``head`` when its
   output size is the vocabulary size (the token embedding's rows), else a ``classifier`` if it
   is the last one.
3. ``dataflow`` (with ``example_input``): each block is run again with one projection's output
   replaced by zeros; a projection whose output reaches the block's output unchanged (the block
   output moves by exactly that projection's output) writes into the residual stream. Such a
   projection is an attention output (inside attention) or an MLP down projection.
4. ``override``: ``overrides={"glob": "role"}`` decides last, for anything initlab got wrong.

Blocks are the repeated units (``transformer.h.3``, ``model.layers.0``, ``encoder.block.1``,
``layer2.0``): children of a ``ModuleList``/``Sequential`` that are not plain containers and
own at least two parameterized sub-layers. Blocks of one class form one stack (encoder and
decoder apart), so ``L`` is the stack's length and ``i`` a block's 0-based index in it.
Fans always come from the logical shape: ``Conv1D`` stores ``(in, out)`` and is read that way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from initlab._core.table import format_table
from initlab._core.validation import unknown_name_error
from initlab.initializers.trace import call_model

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

_NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)  # fmt: skip

_Q = {"q", "q_proj", "query", "wq", "to_q", "q_lin", "query_proj"}
_K = {"k", "k_proj", "key", "wk", "to_k", "k_lin", "key_proj"}
_V = {"v", "v_proj", "value", "wv", "to_v", "v_lin", "value_proj"}
_QKV = {"c_attn", "qkv", "qkv_proj", "query_key_value", "wqkv", "att_proj", "in_proj", "w_qkv"}
_ATTN_OUT = {"o", "o_proj", "out_proj", "wo", "c_proj", "dense", "attn_out", "proj", "out_lin",
             "to_out", "output"}  # fmt: skip
_GATE = {"gate_proj", "wi_0", "fc_gate", "gate", "w_gate"}
_UP = {"up_proj", "wi_1", "fc_up", "w_up"}
_IN = {"c_fc", "fc1", "wi", "dense_h_to_4h", "ff_proj", "fc_in", "lin1", "linear1", "w_in", "fc",
       "w1"}  # fmt: skip
_DOWN = {"down_proj", "w2", "c_proj", "fc2", "wo", "dense_4h_to_h", "ff_out", "fc_out", "lin2",
         "linear2", "w_out"}  # fmt: skip
_HEAD = {"lm_head", "head", "output", "embed_out", "decoder", "output_layer", "readout"}
_SCALE_NAMES = ("scale", "alpha", "resweight", "gamma", "layer_scale", "ls", "skip_gain", "gain")
_SHORTCUT = ("downsample", "shortcut", "skip")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


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


# ---------------------------------------------------------------------- module kinds
def _is_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D``: a linear layer storing its weight as ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def linear_fans(module: nn.Module, param: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a linear-like weight from its logical shape (``Conv1D`` is
    ``(in, out)``, everything else ``(out, in, *kernel)``)."""
    shape = tuple(param.shape)
    if _is_conv1d(module):
        return shape[0], shape[1]
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        rf = int(torch.tensor(shape[2:]).prod()) if len(shape) > 2 else 1
        return shape[0] // module.groups * rf, shape[1] * rf
    rf = 1
    for k in shape[2:]:
        rf *= k
    if isinstance(module, nn.modules.conv._ConvNd):
        return shape[1] * rf, shape[0] // module.groups * rf
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return 1, shape[1]
    return shape[1] * rf, shape[0] * rf


def is_zero_centered(module: nn.Module) -> bool | None:
    """Whether a norm's forward scales by ``1 + w`` (Gemma, Qwen3.5, Megatron ``1p``).

    Measured: the norm is run on a random input with its weight set to zero. A plain norm then
    outputs zeros (shift aside); a ``1 + w`` norm outputs the normalized input. ``None`` when
    the norm cannot be run on a ``(4, n)`` input (batch norms, channel-first norms); the class
    name then decides (``Gemma``/``1p``/``ZeroCentered``).
    """
    name = type(module).__name__.lower()
    by_name = any(key in name for key in ("gemma", "1p", "zerocentered", "zero_centered"))
    weight = getattr(module, "weight", None)
    if getattr(module, "zero_centered_gamma", False) or getattr(module, "apply_1p", False):
        return True
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or weight.device.type == "meta":
        return True if by_name else None
    if isinstance(module, nn.modules.batchnorm._NormBase | nn.GroupNorm):
        return False
    saved = weight.detach().clone()
    bias = getattr(module, "bias", None)
    saved_bias = bias.detach().clone() if isinstance(bias, torch.Tensor) else None
    x = torch.linspace(-2.0, 3.0, 4 * weight.numel(), dtype=weight.dtype).reshape(4, -1)
    try:
        with torch.no_grad():
            weight.zero_()
            if saved_bias is not None:
                bias.zero_()
            out = module(x.to(weight.device))
        if isinstance(out, tuple):
            out = out[0]
        return bool(out.detach().abs().max() > 1e-3)
    except Exception:
        return True if by_name else None
    finally:
        with torch.no_grad():
            weight.copy_(saved)
            if saved_bias is not None:
                bias.copy_(saved_bias)


# ---------------------------------------------------------------------- blocks
def _find_blocks(model: nn.Module) -> dict[str, tuple[str, int]]:
    """``{block module name: (stack name, index)}`` for the outermost repeated blocks."""
    named = dict(model.named_modules())
    candidates: list[str] = []
    for name, module in named.items():
        if not name or isinstance(module, _CONTAINERS):
            continue
        parent_name, _, leaf = name.rpartition(".")
        if not leaf.isdigit() or not isinstance(
            named.get(parent_name), nn.Sequential | nn.ModuleList
        ):
            continue
        owners = sum(
            1 for sub_name, sub in module.named_modules()
            if sub_name and any(True for _ in sub.parameters(recurse=False))
        )  # fmt: skip
        if owners >= 2:
            candidates.append(name)
    outer = [c for c in candidates if not any(c.startswith(o + ".") for o in candidates)]
    stacks: dict[str, list[str]] = {}
    for name in outer:
        parts = name.split(".")
        side = next((p for p in parts if p in ("encoder", "decoder")), "")
        key = type(named[name]).__name__ + (f"@{side}" if side else "")
        stacks.setdefault(key, []).append(name)
    result: dict[str, tuple[str, int]] = {}
    for key, names in stacks.items():
        label = _stack_label(key, names)
        for index, name in enumerate(names):
            result[name] = (label, index)
    return result


def _stack_label(key: str, names: list[str]) -> str:
    first = names[0].rsplit(".", 1)[0]
    return first if all(n.rsplit(".", 1)[0] == first for n in names) else key


def _block_of(name: str, blocks: dict[str, tuple[str, int]]) -> str | None:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in blocks:
            return prefix
    return None


# ---------------------------------------------------------------------- linear roles by name
def _linear_role(module_name: str, block: str | None, siblings: set[str]) -> str | None:
    """The role of a linear layer inside a block, from its name and its ancestors' names."""
    inner = module_name[len(block) + 1 :] if block else module_name
    parts = [p.lower() for p in inner.split(".")]
    leaf = parts[-1]
    ancestors = parts[:-1]
    in_attn = any("attn" in p or "attention" in p for p in ancestors)
    in_mlp = any(p in ("mlp", "ffn", "ff", "feed_forward", "feedforward", "densereludense",
                       "intermediate", "output", "ffw") or "mlp" in p or "ffn" in p
                 for p in ancestors)  # fmt: skip
    if leaf in _QKV:
        return "attn_qkv"
    if in_attn or not in_mlp:
        if leaf in _Q:
            return "attn_q"
        if leaf in _K:
            return "attn_k"
        if leaf in _V:
            return "attn_v"
    if in_attn and leaf in _ATTN_OUT:
        return "attn_out"
    if leaf == "dense" and ancestors:
        if ancestors[-1] == "intermediate":
            return "mlp_in"
        if ancestors[-1] == "output":
            return "mlp_down"
    if (leaf == "w1" and "w3" in siblings) or leaf in _GATE:
        return "mlp_gate"
    if (leaf == "w3" and "w1" in siblings) or leaf in _UP:
        return "mlp_up"
    if leaf in _IN:
        return "mlp_in"
    if leaf in _DOWN:
        return "mlp_down" if not in_attn else "attn_out"
    return None


# ---------------------------------------------------------------------- data flow
def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list) and value:
        return _first_tensor(value[0])
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    return None


def residual_writers(model: nn.Module, example_input: Any) -> dict[str, bool] | None:
    """``{linear module name: writes into the residual stream}`` for linears inside blocks.

    Each block's inputs are recorded on one forward pass (eval mode, no grad); then the block
    is called again on them with linears' outputs replaced by zeros (:func:`_block_writers`).
    ``None`` if the model cannot be run on ``example_input``.
    """
    named = dict(model.named_modules())
    blocks = _find_blocks(model)
    captured: dict[str, tuple[tuple, dict, torch.Tensor]] = {}
    handles = []

    def pre(name):
        def hook(module, args, kwargs):
            captured.setdefault(name, (args, kwargs, None))

        return hook

    def post(name):
        def hook(module, args, kwargs, output):
            args0, kwargs0, _ = captured[name]
            out = _first_tensor(output)
            if out is not None:
                captured[name] = (args0, kwargs0, out.detach().clone())

        return hook

    for name in blocks:
        handles.append(named[name].register_forward_pre_hook(pre(name), with_kwargs=True))
        handles.append(named[name].register_forward_hook(post(name), with_kwargs=True))
    linears = {n: m for n, m in named.items() if _is_linear(m) and _block_of(n, blocks)}
    was_training = {n: m.training for n, m in named.items()}
    model.eval()
    if isinstance(example_input, Mapping) and _accepts(model, "use_cache"):
        # A cache would remember the first pass and change every re-run of a block.
        example_input = {**example_input, "use_cache": False}
    try:
        with torch.no_grad():
            call_model(model, example_input)
    except Exception:
        return None
    finally:
        for h in handles:
            h.remove()
        for n, m in named.items():
            m.training = was_training[n]
    result: dict[str, bool] = {}
    by_block: dict[str, list[str]] = {}
    for name in linears:
        by_block.setdefault(_block_of(name, blocks), []).append(name)
    model.eval()
    try:
        for block, names in by_block.items():
            if block not in captured or captured[block][2] is None:
                continue
            result.update(_block_writers(named, block, names, captured[block][:2]))
    finally:
        for n, m in named.items():
            m.training = was_training[n]
    return result


def _block_writers(
    named: dict[str, nn.Module], block: str, names: list[str], inputs: tuple[tuple, dict]
) -> dict[str, bool]:
    """Residual writers of one block, found from the last sublayer backwards.

    With the writers found so far zeroed (a zeroed branch adds nothing, whatever its input),
    a candidate writes into the stream when zeroing it too moves the block's output by exactly
    its own output. Repeated until no new writer appears: the MLP's down projection first,
    then the attention output projection that feeds it.
    """
    args, kwargs = inputs
    writers: set[str] = set()
    decided: dict[str, bool] = {}

    def run(zeroed: set[str]) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        outputs: dict[str, torch.Tensor] = {}
        handles = []
        for name in names:

            def hook(module, a, o, name=name):
                if isinstance(o, torch.Tensor):
                    outputs.setdefault(name, o.detach().clone())
                    if name in zeroed:
                        return torch.zeros_like(o)
                return None

            handles.append(named[name].register_forward_hook(hook))
        try:
            with torch.no_grad():
                out = _first_tensor(named[block](*args, **kwargs))
        except Exception:
            out = None
        finally:
            for h in handles:
                h.remove()
        return out, outputs

    candidates = list(names)
    while True:
        base, outputs = run(writers)
        if base is None:
            return decided
        new = set()
        for name in candidates:
            if name in writers or name not in outputs:
                continue
            out = outputs[name]
            if out.shape != base.shape:
                decided[name] = False
                continue
            ablated, _ = run(writers | {name})
            if ablated is None or ablated.shape != base.shape:
                continue
            scale = out.abs().max().clamp_min(1e-12)
            hit = bool(((base - ablated) - out).abs().max() <= 1e-4 * scale + 1e-6)
            decided[name] = hit
            if hit:
                new.add(name)
        if not new:
            return decided
        writers |= new
        # Only a layer that runs before the writers just found can feed them (execution
        # order is the order of ``outputs``).
        order = list(outputs)
        first = min(order.index(n) for n in new)
        candidates = [n for n in order[:first] if decided.get(n) is not True]


def _accepts(model: nn.Module, argument: str) -> bool:
    import inspect

    try:
        return argument in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------- the table
def _config_dims(model: nn.Module) -> dict[str, float]:
    config = getattr(model, "config", None)
    dims: dict[str, float] = {}
    if config is None:
        return dims
    for key, names in (
        ("d", ("hidden_size", "n_embd", "d_model", "dim")),
        ("d_ff", ("intermediate_size", "n_inner", "d_ff", "ffn_dim")),
        ("n_heads", ("num_attention_heads", "n_head", "num_heads")),
        ("d_kv", ("d_kv", "head_dim")),
        ("vocab", ("vocab_size",)),
        ("initializer_range", ("initializer_range",)),
        ("factor", ("initializer_factor",)),
    ):
        for attr in names:
            value = getattr(config, attr, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                dims[key] = float(value)
                break
    return dims


def _check_overrides(overrides: Mapping[str, str] | None) -> dict[str, str]:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a mapping {{name glob: role}}; got {overrides!r}")
    for glob, role in overrides.items():
        if not isinstance(glob, str):
            raise TypeError(f"override keys are parameter-name globs; got {glob!r}")
        if role not in ROLES:
            raise unknown_name_error("role", role, ROLES)
    return dict(overrides)


def roles(
    model: nn.Module,
    example_input: Any = None,
    overrides: Mapping[str, str] | None = None,
) -> RoleTable:
    """The role of every parameter of ``model`` (see the module docstring for how).

    ``example_input``: how the model is called (a tensor, a tuple of positional arguments or a
    dict of keyword arguments); with it, residual-stream writers are found from the data flow.
    ``overrides``: ``{"parameter glob": "role"}``, applied last (``"*.c_proj.weight":
    "attn_out"``); roles are the keys of :data:`ROLES`.

    >>> import torch.nn as nn
    >>> table = roles(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> [r.role for r in table.rows]
    ['linear', 'bias', 'classifier', 'bias']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"roles needs a torch.nn.Module; got {type(model).__name__}")
    checked = _check_overrides(overrides)
    named = dict(model.named_modules())
    blocks = _find_blocks(model)
    stacks: dict[str, int] = {}
    for label, _ in blocks.values():
        stacks[label] = stacks.get(label, 0) + 1
    writers = residual_writers(model, example_input) if example_input is not None else None
    table = RoleTable(stacks=stacks, dataflow=writers is not None)

    # Execution-free order of layers: registration order, which is the data flow for
    # torchvision/HF blocks (conv1, bn1, conv2, bn2, downsample).
    order = list(named)
    first_block = min((order.index(b) for b in blocks), default=len(order))
    embeddings = [m for m in named.values() if isinstance(m, nn.Embedding)]
    token_embedding = max(embeddings, key=lambda m: m.num_embeddings, default=None)
    vocab = token_embedding.num_embeddings if token_embedding is not None else None
    outside_linears = [n for n, m in named.items() if _is_linear(m) and not _block_of(n, blocks)]
    last_outside = outside_linears[-1] if outside_linears else None
    # Last conv of each block's residual branch, and the norm right after it.
    branch_conv: dict[str, str] = {}
    branch_norm: dict[str, str] = {}
    for block in blocks:
        inner = [(n, m) for n, m in named.items() if n.startswith(block + ".")
                 and not any(s in n[len(block):].lower() for s in _SHORTCUT)]  # fmt: skip
        convs = [n for n, m in inner if isinstance(m, nn.modules.conv._ConvNd)]
        if convs and not any(_is_linear(m) for _, m in inner):
            branch_conv[block] = convs[-1]
            after = [n for n, m in inner[[n for n, _ in inner].index(convs[-1]) :]
                     if _is_norm(m) and n != convs[-1]]  # fmt: skip
            if after:
                branch_norm[block] = after[0]

    seen: dict[int, str] = {}
    for module_name, module in named.items():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        block = _block_of(module_name, blocks)
        label, index = blocks[block] if block else (None, None)
        siblings = set(named[module_name.rpartition(".")[0]]._modules) if module_name else set()
        weight_role = None
        zero_centered = is_zero_centered(module) if _is_norm(module) else None
        for name, param in own:
            qualified = f"{module_name}.{name}" if module_name else name
            shape = tuple(param.shape)
            row = RoleRow(qualified, shape, "other", type(module).__name__, "type",
                          block=index, n_blocks=stacks.get(label) if label else None,
                          stack=label)  # fmt: skip
            if id(param) in seen:
                row.tied_to = seen[id(param)]
            else:
                seen[id(param)] = qualified
            _assign(row, module, module_name, name, param, block, siblings, writers,
                    branch_conv, branch_norm, order, first_block, vocab, last_outside,
                    zero_centered)  # fmt: skip
            if name == "weight" or name == "in_proj_weight":
                weight_role = row.role
            if row.role == "bias":
                row.of = weight_role
            table.rows.append(row)
    for row in table.rows:
        for glob, role in checked.items():
            if fnmatch.fnmatchcase(row.parameter, glob):
                row.role, row.source, row.chunks = role, "override", ()
    table.dims = _dims(model, table, vocab)
    return table


def _assign(
    row: RoleRow, module: nn.Module, module_name: str, name: str, param: torch.Tensor,
    block: str | None, siblings: set[str], writers: dict[str, bool] | None,
    branch_conv: dict[str, str], branch_norm: dict[str, str], order: list[str],
    first_block: int, vocab: int | None, last_outside: str | None, zero_centered: bool | None,
) -> None:  # fmt: skip
    """Set ``row.role`` (and fans, chunks, residual, source) for one parameter."""
    leaf = module_name.rsplit(".", 1)[-1].lower()
    if param.dim() >= 2 and not isinstance(module, nn.MultiheadAttention):
        row.fan_in, row.fan_out = linear_fans(module, param)
    if _is_norm(module) and not _is_linear(module):
        row.zero_centered = zero_centered if name == "weight" else None
        if name == "weight":
            row.role = "norm_branch_out" if block and branch_norm.get(block) == module_name else (
                "norm_scale"
            )  # fmt: skip
        elif name == "bias":
            row.role = "norm_shift"
        return
    if isinstance(module, nn.Embedding | nn.EmbeddingBag) and name == "weight":
        if "relative_attention_bias" in module_name or ("rel" in leaf and "bias" in leaf):
            row.role = "rel_attn_bias"
        elif any(k in leaf for k in ("pos", "wpe", "position", "token_type", "segment")):
            row.role = "position_embedding"
        else:
            row.role = "embedding"
        return
    if isinstance(module, nn.MultiheadAttention):
        if name == "in_proj_weight":
            e = param.shape[0] // 3
            row.role, row.fan_in, row.fan_out = "attn_qkv", param.shape[1], e
            row.chunks = tuple(Chunk(r, 0, k * e, (k + 1) * e)
                               for k, r in enumerate(("attn_q", "attn_k", "attn_v")))  # fmt: skip
        elif name.endswith("_proj_weight"):
            row.role = {"q": "attn_q", "k": "attn_k", "v": "attn_v"}[name[0]]
            row.fan_in, row.fan_out = param.shape[1], param.shape[0]
        elif "bias" in name and name not in ("bias_k", "bias_v"):
            row.role = "bias"
        return
    if "bias" in name and param.dim() <= 1 and (param.numel() > 1 or hasattr(module, "weight")):
        row.role = "bias"
        return
    if param.numel() == 1 or (param.dim() <= 1 and name.lower() in _SCALE_NAMES):
        lowered = name.lower()
        if "bias" in lowered:
            row.role, row.source = "scalar_bias", "name"
        elif any(lowered.startswith(s) for s in _SCALE_NAMES):
            row.role, row.source = "branch_scale", "name"
        return
    if isinstance(module, nn.modules.conv._ConvNd) and name == "weight":
        inner = module_name[len(block) :].lower() if block else ""
        if block and any(s in inner for s in _SHORTCUT):
            row.role = "conv_shortcut"
        elif block and branch_conv.get(block) == module_name:
            row.role = "conv_branch_out"
        elif not block and order.index(module_name) < first_block:
            row.role = "conv_stem"
        else:
            row.role = "conv_body"
        return
    if _is_linear(module) and name == "weight":
        row.source = "name"
        if block is None:
            out_features = row.fan_out
            if (leaf in _HEAD and vocab is not None and out_features == vocab) or (
                vocab is not None and out_features == vocab and module_name == last_outside
            ):
                row.role = "head"
            elif module_name == last_outside:
                row.role = "classifier"
            else:
                row.role = "linear"
            return
        role = _linear_role(module_name, block, siblings) or "linear"
        if role == "linear" and writers is not None and writers.get(module_name) is False:
            inner = module_name[len(block) + 1 :].lower()
            if "mlp" in inner or "ff" in inner:
                role, row.source = "mlp_in", "dataflow"  # an MLP layer that feeds the block
        if writers is not None and module_name in writers:
            row.residual = writers[module_name]
            if row.residual and role not in ("attn_out", "mlp_down"):
                inner = module_name[len(block) + 1 :].lower()
                role = "attn_out" if "attn" in inner or "attention" in inner else "mlp_down"
                row.source = "dataflow"
            elif not row.residual and role in ("attn_out", "mlp_down"):
                row.source = "name"  # post-norm blocks: the projection feeds a norm first
        row.role = role
        if role == "attn_qkv" and param.dim() == 2:
            dim = 1 if _is_conv1d(module) else 0
            e = param.shape[dim] // 3
            row.fan_out = e
            row.chunks = tuple(Chunk(r, dim, k * e, (k + 1) * e)
                               for k, r in enumerate(("attn_q", "attn_k", "attn_v")))  # fmt: skip
        return
    if param.dim() >= 2 and any(k in name.lower() for k in ("pos", "position")):
        row.role, row.source = "position_embedding", "name"


def _dims(model: nn.Module, table: RoleTable, vocab: int | None) -> dict[str, float]:
    dims = _config_dims(model)
    emb = [r for r in table.rows if r.role == "embedding" and not r.tied_to]
    if "d" not in dims:
        if emb and len(emb[0].shape) == 2:
            dims["d"] = float(emb[0].shape[1])
        else:
            outs = [r.fan_out for r in table.rows if r.role in ("attn_out", "mlp_down")]
            if outs and outs[0]:
                dims["d"] = float(outs[0])
    if "d_ff" not in dims:
        downs = [r.fan_in for r in table.rows if r.role == "mlp_down" and r.fan_in]
        if downs:
            dims["d_ff"] = float(downs[0])
    if vocab is not None and "vocab" not in dims:
        dims["vocab"] = float(vocab)
    if "d_kv" not in dims and "n_heads" in dims and "d" in dims:
        dims["d_kv"] = dims["d"] / dims["n_heads"]
    return dims
