"""The repeated blocks of a model (``transformer.h.3``, ``model.layers.0``, ``layer2.0``):
children of a ``ModuleList``/``Sequential`` that are not plain containers and own at least two
parameterized sub-layers, grouped into stacks. A stack's length is the ``L`` of a recipe and a
block's index its ``i``.

What one stack is:

- the blocks of one container (``model.layers``), whatever their classes (a hybrid model that
  alternates attention and Mamba blocks in one list has one residual stream of that depth);
- containers side by side in one tower that hold blocks of a common class, such as a ResNet's
  ``layer1`` ... ``layer4`` (a tower is the container's parent path with indices left out, so
  timm's ``stages.0.blocks`` and ``stages.1.blocks`` are one tower);
- never blocks of two towers (CLIP's ``text_model.encoder.layers`` and
  ``vision_model.encoder.layers``) nor of an encoder and a decoder (T5's ``encoder.block`` and
  ``decoder.block``): each counts its own depth.
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
    containers: dict[str, list[str]] = {}
    for name in outer:
        containers.setdefault(name.rpartition(".")[0], []).append(name)
    stacks = _merge_containers(containers, named)
    result: dict[str, tuple[str, int]] = {}
    for label, names in stacks.items():
        for index, name in enumerate(names):
            result[name] = (label, index)
    return result


def _tower(container: str) -> tuple[str, str]:
    """``(tower, side)`` of a container: its parent path with indices replaced by ``#``, and
    ``encoder``/``decoder`` if the path runs through one."""
    parts = container.split(".")
    side = next((p for p in parts if p in ("encoder", "decoder")), "")
    parent = parts[:-1]
    return ".".join("#" if p.isdigit() else p for p in parent), side


def _merge_containers(
    containers: dict[str, list[str]], named: dict[str, nn.Module]
) -> dict[str, list[str]]:
    """Stacks (label -> block names in order): one per container, merged with the earlier
    containers of the same tower and side whose blocks share a class with it."""
    groups: list[tuple[tuple[str, str], set[str], list[str], list[str]]] = []
    for container, names in containers.items():
        key = _tower(container)
        classes = {type(named[n]).__name__ for n in names}
        for group_key, group_classes, group_containers, group_names in groups:
            if group_key == key and group_classes & classes:
                group_classes |= classes
                group_containers.append(container)
                group_names.extend(names)
                break
        else:
            groups.append((key, classes, [container], list(names)))
    stacks: dict[str, list[str]] = {}
    for (tower, side), _, group_containers, names in groups:
        if len(group_containers) == 1:
            label = group_containers[0]
        else:
            label = type(named[names[0]]).__name__ + (f"@{side}" if side else "")
            if label in stacks:
                label += f"@{tower}"
        stacks[label] = names
    return stacks


def _block_of(name: str, blocks: dict[str, tuple[str, int]]) -> str | None:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in blocks:
            return prefix
    return None
