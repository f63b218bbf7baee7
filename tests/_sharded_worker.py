"""The rank side of tests/test_sharded.py: one spawn per world size runs every sharded check.

Each rank joins a gloo process group on the CPU (a FileStore, so no port is needed), shards a
small transformer in several ways, initializes it with initlab, gathers every parameter and
rank 0 saves the results for the test process to compare with a single-process reference.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

SEED = 7
SCHEMES = ("he_normal", "xavier_uniform", "lecun_truncated", "orthogonal")


class Tiny(nn.Module):
    """A small GPT-like stack with odd sizes (uneven shards): embedding, encoder layers (fused
    q/k/v ``in_proj_weight``: per-projection fans), final norm, untied head. Layers live in a
    ModuleDict, so a pipeline stage that deletes the others keeps the parameter names."""

    def __init__(self, vocab: int = 37, d: int = 18, ff: int = 30, layers: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleDict(
            {
                str(i): nn.TransformerEncoderLayer(d, 3, ff, dropout=0.0, batch_first=True)
                for i in range(layers)
            }
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers.values():
            x = layer(x)
        return self.head(self.norm(x))


def empty_tiny() -> Tiny:
    """A Tiny without PyTorch's default init (no global RNG draw): storage only."""
    with torch.device("meta"):
        model = Tiny()
    return model.to_empty(device="cpu")


def placements_for(kind: str, param: torch.Tensor) -> list:
    from torch.distributed.tensor import Replicate, Shard

    one = {"shard0": Shard(0), "shard1": Shard(min(1, param.dim() - 1)), "replicate": Replicate()}
    return [one[k] for k in kind.split("+")]


def shard_model(model: nn.Module, mesh, kind: str) -> nn.Module:
    from torch.distributed.tensor import distribute_tensor

    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            placed = distribute_tensor(param.data, mesh, placements_for(kind, param))
            module.register_parameter(name, nn.Parameter(placed))
    return model


def local_parts(model: nn.Module) -> dict[str, tuple]:
    """Each parameter's local tensor and its offsets in the logical one (this rank's part)."""
    from initlab.initializers.sharded import local_part

    out = {}
    for name, param in model.named_parameters():
        local, offsets = local_part(param)
        out[name] = (tuple(param.shape), offsets, local.detach().clone())
    return out


def assemble(every: list[dict]) -> dict[str, torch.Tensor]:
    """The full tensors from all ranks' parts (a gather through one all_gather_object)."""
    full: dict[str, torch.Tensor] = {}
    for parts in every:
        for name, (shape, offsets, local) in parts.items():
            target = full.setdefault(name, torch.full(shape, float("nan")))
            index = tuple(slice(o, o + n) for o, n in zip(offsets, local.shape, strict=True))
            target[index] = local
    return full


def audit_rows(model: nn.Module) -> list[tuple]:
    import initlab

    return [(r.parameter, r.hash, r.mean, r.std) for r in initlab.audit_init(model).rows]


def run(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # DTensor's RNG tracker warns about CPU meshes
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"file://{store}")
    try:
        results = _checks(rank, world)
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.barrier()
        dist.destroy_process_group()


def _checks(rank: int, world: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    import initlab

    parts: dict = {}  # case -> this rank's parts; gathered once at the end
    results: dict = {}
    mesh = init_device_mesh("cpu", (world,))
    cases = [("1d", mesh, kind, SCHEMES) for kind in ("shard0", "shard1", "replicate")]
    if world == 4:
        mesh2 = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
        for kind in ("shard0+shard1", "replicate+shard0", "shard1+shard0"):
            cases.append(("2d", mesh2, kind, SCHEMES))
    # 1. DTensor placements on 1-D and 2-D meshes, every scheme; the audit after the first.
    for mesh_name, device_mesh, kind, schemes in cases:
        model = shard_model(empty_tiny(), device_mesh, kind)
        for scheme in schemes:
            bias = "default" if scheme == "xavier_uniform" else "zeros"
            initlab.init_model(model, scheme, bias=bias, seed=SEED)
            key = f"{mesh_name}:{kind}:{scheme}"
            parts[key] = local_parts(model)
            if scheme == schemes[0]:
                results[key + ":audit"] = audit_rows(model)
    try:  # the torch-generator path refuses DTensors (its values would depend on the sharding)
        initlab.init_model(model, "he_normal", seed=SEED, rng="torch")
        results["rng_torch_on_dtensor"] = "accepted"
    except ValueError as error:
        results["rng_torch_on_dtensor"] = str(error)
    # 2. FSDP2: fully_shard on meta, to_empty, then initlab.
    with torch.device("meta"):
        model = Tiny()
    for layer in model.layers.values():
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    initlab.init_model(model, "he_normal", seed=SEED)
    parts["fsdp:he_normal"] = local_parts(model)
    results["fsdp:he_normal:audit"] = audit_rows(model)
    # 3. Pipeline stages: rank r keeps a contiguous run of layers (embedding on the first
    # stage, norm and head on the last) and initializes only its stage.
    stage = empty_tiny()
    keep = {str(i) for i in np.array_split(np.arange(len(stage.layers)), world)[rank]}
    for name in list(stage.layers):
        if name not in keep:
            del stage.layers[name]
    if rank:
        stage.embed = None
    if rank != world - 1:
        stage.norm = stage.head = None
    for scheme in ("he_normal", "xavier_uniform"):
        initlab.init_model(stage, scheme, seed=SEED)
        parts[f"pipeline:{scheme}"] = local_parts(stage)
    # 4. The problem: torch.nn.init on the same DTensors, from the same seed.
    from torch.distributed.tensor import Shard, distribute_tensor

    for placement in (0, 1):
        weight = distribute_tensor(torch.zeros(37, 18), mesh, [Shard(placement)])
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(SEED)
                nn.init.normal_(weight)
            results[f"torch_init:shard{placement}"] = weight.full_tensor().clone()
        except Exception as error:  # recorded for the test to assert on
            results[f"torch_init:shard{placement}"] = f"{type(error).__name__}: {error}"
    every: list = [None] * world
    dist.all_gather_object(every, parts)
    for case in parts:
        results[case] = assemble([rank_parts[case] for rank_parts in every])
    return results
