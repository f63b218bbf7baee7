"""Which linear layers of a block write into the residual stream, from the data flow: each
block is re-run on its recorded inputs with projections' outputs replaced by zeros; a
projection whose output reaches the block's output unchanged is a writer (an attention output
or an MLP down projection). See :func:`residual_writers`.

Three mechanisms answer neighbouring questions about residual streams; they are kept apart
because they answer different questions, not by accident:

* this module, the *zeroed-projection* test: "does the block's output move by exactly this
  projection's output?" A post-norm block (BERT: ``LayerNorm(x + dense(h))``) says no, which
  is what a recipe's depth scaling of residual writers wants; it needs only hooks on blocks.
* :meth:`initlab.initializers.trace.DataFlow.residual` (``flow_walk._feeds_residual``):
  "does this layer's output reach an add whose other operand skips it?", through norms,
  scalings and dropout, from one recorded forward pass. BERT's ``dense`` says yes. Used by
  activation discovery and the doctor to treat a branch against its skip path.
* :class:`initlab.initializers.residual.Flow`: a live ``TorchFunctionMode`` that tags tensors
  by depth and calls back at every ``skip + branch`` add *during* a forward, so LSUV and the
  signal-propagation plot can measure or rescale the branch there; it records nothing.

Replacing this test by ``DataFlow.residual`` would change the roles of post-norm models
(``attn_out``/``mlp_down`` found by data flow where today the name decides), so they stay
separate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from initlab.initializers.blocks import _block_of, _find_blocks
from initlab.initializers.layer_kinds import _is_linear
from initlab.initializers.model_calls import call_model


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
