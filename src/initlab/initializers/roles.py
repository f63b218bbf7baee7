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
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab._core.validation import unknown_name_error
from initlab.initializers.blocks import _block_of, _find_blocks
from initlab.initializers.layer_kinds import (
    _is_conv1d,
    _is_linear,
    _is_norm,
    is_zero_centered,
    linear_fans,
)
from initlab.initializers.residual_writers import (  # noqa: F401 (re-exported)
    _first_tensor,
    residual_writers,
)
from initlab.initializers.role_table import (
    ROLES,
    Chunk,
    RoleRow,
    RoleTable,
)

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


@dataclass
class _Model:
    """What the role of one parameter depends on besides its own module: the blocks, the
    residual writers (``None`` without data flow), the last conv and norm of each residual
    branch, the registration order, and the vocabulary and last linear outside the blocks."""

    blocks: dict[str, tuple[str, int]]
    writers: dict[str, bool] | None
    branch_conv: dict[str, str]
    branch_norm: dict[str, str]
    order: list[str]
    first_block: int
    vocab: int | None
    last_outside: str | None


def _branch_layers(
    named: dict[str, nn.Module], blocks: dict[str, tuple[str, int]]
) -> tuple[dict[str, str], dict[str, str]]:
    """The last conv of each block's residual branch (CNN blocks: convs and no linears,
    shortcut layers left out), and the norm right after it."""
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
    return branch_conv, branch_norm


def _survey(model: nn.Module, example_input: Any) -> tuple[_Model, dict[str, int]]:
    """The model-wide facts of :class:`_Model`, and each stack's block count."""
    named = dict(model.named_modules())
    blocks = _find_blocks(model)
    stacks: dict[str, int] = {}
    for label, _ in blocks.values():
        stacks[label] = stacks.get(label, 0) + 1
    writers = residual_writers(model, example_input) if example_input is not None else None
    # Execution-free order of layers: registration order, which is the data flow for
    # torchvision/HF blocks (conv1, bn1, conv2, bn2, downsample).
    order = list(named)
    first_block = min((order.index(b) for b in blocks), default=len(order))
    embeddings = [m for m in named.values() if isinstance(m, nn.Embedding)]
    token_embedding = max(embeddings, key=lambda m: m.num_embeddings, default=None)
    vocab = token_embedding.num_embeddings if token_embedding is not None else None
    outside = [n for n, m in named.items() if _is_linear(m) and not _block_of(n, blocks)]
    branch_conv, branch_norm = _branch_layers(named, blocks)
    facts = _Model(blocks, writers, branch_conv, branch_norm, order, first_block, vocab,
                   outside[-1] if outside else None)  # fmt: skip
    return facts, stacks


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
    facts, stacks = _survey(model, example_input)
    table = RoleTable(stacks=stacks, dataflow=facts.writers is not None)
    seen: dict[int, str] = {}
    for module_name, module in named.items():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        block = _block_of(module_name, facts.blocks)
        label, index = facts.blocks[block] if block else (None, None)
        siblings = set(named[module_name.rpartition(".")[0]]._modules) if module_name else set()
        weight_role = None
        zero_centered = is_zero_centered(module) if _is_norm(module) else None
        for name, param in own:
            qualified = f"{module_name}.{name}" if module_name else name
            row = RoleRow(qualified, tuple(param.shape), "other", type(module).__name__, "type",
                          block=index, n_blocks=stacks.get(label) if label else None,
                          stack=label)  # fmt: skip
            if id(param) in seen:
                row.tied_to = seen[id(param)]
            else:
                seen[id(param)] = qualified
            _assign(row, module, module_name, name, param, block, siblings, facts,
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
    table.dims = _dims(model, table, facts.vocab)
    return table


def _assign(
    row: RoleRow, module: nn.Module, module_name: str, name: str, param: torch.Tensor,
    block: str | None, siblings: set[str], facts: _Model, zero_centered: bool | None,
) -> None:  # fmt: skip
    """Set ``row.role`` (and fans, chunks, residual, source) for one parameter: by the
    module's type first (norm, embedding, attention, conv), then scalars and biases by name,
    then linear layers by name and data flow."""
    leaf = module_name.rsplit(".", 1)[-1].lower()
    if param.dim() >= 2 and not isinstance(module, nn.MultiheadAttention):
        row.fan_in, row.fan_out = linear_fans(module, param)
    if _is_norm(module) and not _is_linear(module):
        row.zero_centered = zero_centered if name == "weight" else None
        if name == "weight":
            last = block and facts.branch_norm.get(block) == module_name
            row.role = "norm_branch_out" if last else "norm_scale"
        elif name == "bias":
            row.role = "norm_shift"
    elif isinstance(module, nn.Embedding | nn.EmbeddingBag) and name == "weight":
        row.role = _embedding_role(module_name, leaf)
    elif isinstance(module, nn.MultiheadAttention):
        _assign_attention(row, name, param)
    elif "bias" in name and param.dim() <= 1 and (param.numel() > 1 or hasattr(module, "weight")):
        row.role = "bias"
    elif param.numel() == 1 or (param.dim() <= 1 and name.lower() in _SCALE_NAMES):
        lowered = name.lower()
        if "bias" in lowered:
            row.role, row.source = "scalar_bias", "name"
        elif any(lowered.startswith(s) for s in _SCALE_NAMES):
            row.role, row.source = "branch_scale", "name"
    elif isinstance(module, nn.modules.conv._ConvNd) and name == "weight":
        row.role = _conv_role(module_name, block, facts)
    elif _is_linear(module) and name == "weight":
        _assign_linear(row, module, module_name, leaf, param, block, siblings, facts)
    elif param.dim() >= 2 and any(k in name.lower() for k in ("pos", "position")):
        row.role, row.source = "position_embedding", "name"


def _embedding_role(module_name: str, leaf: str) -> str:
    if "relative_attention_bias" in module_name or ("rel" in leaf and "bias" in leaf):
        return "rel_attn_bias"
    if any(k in leaf for k in ("pos", "wpe", "position", "token_type", "segment")):
        return "position_embedding"
    return "embedding"


def _assign_attention(row: RoleRow, name: str, param: torch.Tensor) -> None:
    """``nn.MultiheadAttention``: the fused ``in_proj_weight`` (chunks q, k, v) or the separate
    ``q/k/v_proj_weight``, and the projection biases."""
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


def _conv_role(module_name: str, block: str | None, facts: _Model) -> str:
    inner = module_name[len(block) :].lower() if block else ""
    if block and any(s in inner for s in _SHORTCUT):
        return "conv_shortcut"
    if block and facts.branch_conv.get(block) == module_name:
        return "conv_branch_out"
    if not block and facts.order.index(module_name) < facts.first_block:
        return "conv_stem"
    return "conv_body"


def _assign_linear(
    row: RoleRow, module: nn.Module, module_name: str, leaf: str, param: torch.Tensor,
    block: str | None, siblings: set[str], facts: _Model,
) -> None:  # fmt: skip
    """A linear weight: outside the blocks a head (output size = vocabulary), classifier (the
    last one) or plain linear; inside, the role by name (:func:`_linear_role`), corrected by
    the data flow where it knows better; fused q/k/v get their chunks."""
    row.source = "name"
    if block is None:
        vocab, last = facts.vocab, facts.last_outside
        if vocab is not None and row.fan_out == vocab and (leaf in _HEAD or module_name == last):
            row.role = "head"
        else:
            row.role = "classifier" if module_name == last else "linear"
        return
    role = _linear_role(module_name, block, siblings) or "linear"
    writers = facts.writers
    inner = module_name[len(block) + 1 :].lower()
    feeds = writers is not None and writers.get(module_name) is False
    if role == "linear" and feeds and ("mlp" in inner or "ff" in inner):
        role, row.source = "mlp_in", "dataflow"  # an MLP layer that feeds the block
    if writers is not None and module_name in writers:
        row.residual = writers[module_name]
        if row.residual and role not in ("attn_out", "mlp_down"):
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
