"""Tied parameters (one tensor held by several modules, GPT-2's ``wte``/``lm_head``): who
holds each, which use decides its init, rules naming any use, and embeddings' padding rows."""

from __future__ import annotations

from torch import nn

from initlab.initializers.decisions import RuleKey, _rule_for
from initlab.initializers.schemes import Initializer


def _owners(model: nn.Module) -> dict[int, list[tuple[str, nn.Module, str]]]:
    """``id(param)`` -> every (module name, module, attribute) that holds it, in order, for the
    parameters held in more than one place (tied); others are left out."""
    modules = list(model.named_modules(remove_duplicate=False))
    held = [id(p) for _, m in modules for p in m._parameters.values() if p is not None]
    if len(set(held)) == len(held):  # nothing held twice: the common case, kept cheap
        return {}
    first: dict[int, tuple[str, nn.Module, str]] = {}
    owners: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for module_name, module in modules:
        for name, param in module._parameters.items():
            if param is None:
                continue
            entry = (module_name, module, name)
            earlier = first.setdefault(id(param), entry)
            if earlier is entry or (earlier[1] is module and earlier[2] == name):
                continue
            found = owners.setdefault(id(param), [earlier])
            if all(e[1] is not module or e[2] != name for e in found):
                found.append(entry)
    return owners


def _deciding_use(
    uses: list[tuple[str, nn.Module, str]],
) -> tuple[tuple[str, nn.Module, str], str | None]:
    """The use of a tied tensor that decides its init, and a note saying so."""
    if len(uses) < 2:
        return uses[0], None
    inputs = [u for u in uses if isinstance(u[1], nn.Embedding | nn.EmbeddingBag)]
    outputs = [u for u in uses if u not in inputs]
    names = ", ".join(_qualified(u) for u in uses)
    if inputs and outputs:
        decider = outputs[0]
        return decider, (
            f"tied ({names}): initialized for its output use {_qualified(decider)} "
            f"({type(decider[1]).__name__}), so the logits start at unit scale"
        )
    return uses[0], f"tied ({names}): initialized once, for {_qualified(uses[0])}"


def _tied_rule(
    rules: dict[RuleKey, Initializer | str], uses: list[tuple[str, nn.Module, str]]
) -> Initializer | str | None:
    for use in uses:
        matched, rule = _rule_for(rules, _qualified(use), use[1])
        if matched:
            return rule
    return None


def _qualified(use: tuple[str, nn.Module, str]) -> str:
    return f"{use[0]}.{use[2]}" if use[0] else use[2]


def _padding_rows(uses: list[tuple[str, nn.Module, str]]) -> list[int]:
    rows = []
    for _, module, _ in uses:
        if isinstance(module, nn.Embedding | nn.EmbeddingBag) and module.padding_idx is not None:
            rows.append(int(module.padding_idx))
    return sorted(set(rows))
