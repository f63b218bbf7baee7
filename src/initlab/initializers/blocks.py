"""The repeated blocks of a model (``transformer.h.3``, ``model.layers.0``, ``layer2.0``):
children of a ``ModuleList``/``Sequential`` that are not plain containers and own at least two
parameterized sub-layers. Blocks of one class form one stack (encoder and decoder apart), so a
stack's length is the ``L`` of a recipe and a block's index its ``i``.
"""

from __future__ import annotations

from torch import nn

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


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
