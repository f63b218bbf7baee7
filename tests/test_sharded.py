"""Sharded init on torch.distributed (gloo, CPU): the same values at world sizes 1, 2 and 4.

One spawn per world size (tests/_sharded_worker.py runs every check on every rank); each
gathered parameter must be bit-identical to a single-process ``initlab.build`` with the same
seed: DTensor Shard(0)/Shard(1)/Replicate on 1-D and 2-D meshes (uneven shards, fused q/k/v
blocks cut by shards), FSDP2 ``fully_shard`` on meta then ``to_empty``, and a pipeline split of
the layers. ``audit_init`` must give the single-process fingerprints. And the problem itself:
``torch.nn.init`` on the same DTensors does not give the single-process values.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import initlab

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed+gloo"
)

WORLDS = (1, 2, 4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, dict]:
    import _sharded_worker as worker

    folder = tmp_path_factory.mktemp("sharded")
    results = {}
    for world in WORLDS:
        store, out = folder / f"store{world}", folder / f"world{world}.pt"
        env = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            mp.spawn(worker.run, args=(world, str(store), str(out)), nprocs=world, join=True)
        finally:
            if env is None:
                del os.environ["OMP_NUM_THREADS"]
            else:
                os.environ["OMP_NUM_THREADS"] = env
        results[world] = torch.load(out, weights_only=False)
    return results


def _reference(scheme: str, bias: str = "zeros") -> dict[str, torch.Tensor]:
    import _sharded_worker as worker

    model, _ = initlab.build(worker.Tiny, scheme, bias=bias, seed=worker.SEED)
    return {k: v.detach() for k, v in model.named_parameters()}


def _assert_identical(got: dict, want: dict, where: str) -> None:
    assert got.keys() == want.keys(), where
    for name, value in want.items():
        assert torch.equal(got[name], value), f"{where}: {name} differs from one process"


def test_dtensor_placements_give_the_single_process_values(runs):
    import _sharded_worker as worker

    checked = 0
    for scheme in worker.SCHEMES:
        bias = "default" if scheme == "xavier_uniform" else "zeros"
        want = _reference(scheme, bias)
        for world, result in runs.items():
            for key, got in result.items():
                if key.endswith(f":{scheme}") and key.split(":")[0] in ("1d", "2d"):
                    _assert_identical(got, want, f"world {world} {key}")
                    checked += 1
    assert checked == len(worker.SCHEMES) * (3 * len(WORLDS) + 3)  # 2-D mesh at world 4


def test_fsdp2_on_meta_gives_the_single_process_values(runs):
    want = _reference("he_normal")
    for world, result in runs.items():
        _assert_identical(result["fsdp:he_normal"], want, f"fully_shard, world {world}")


def test_pipeline_stages_give_the_single_process_values(runs):
    for scheme in ("he_normal", "xavier_uniform"):
        want = _reference(scheme)
        for world, result in runs.items():
            _assert_identical(result[f"pipeline:{scheme}"], want, f"pipeline {world}")


def test_audit_fingerprints_equal_across_world_sizes(runs):
    import _sharded_worker as worker

    scheme = worker.SCHEMES[0]
    model, _ = initlab.build(worker.Tiny, scheme, seed=worker.SEED)
    want = worker.audit_rows(model)
    checked = 0
    for world, result in runs.items():
        for key, got in result.items():
            if key.endswith(":audit"):
                assert got == want, f"world {world} {key}"
                checked += 1
    assert checked == 4 * len(WORLDS) + 3  # three 1-D placements and FSDP2; 2-D at world 4


def test_torch_nn_init_on_dtensors_depends_on_the_world_size(runs):
    """The problem initlab solves: from the same seed, ``nn.init.normal_`` on a sharded
    DTensor does not give the single-process tensor (torch 2.13 on a CPU mesh: every rank
    draws its shard from the start of the same stream, so shards repeat each other)."""
    import _sharded_worker as worker

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(worker.SEED)
        single = torch.nn.init.normal_(torch.zeros(37, 18))
    for placement in ("shard0", "shard1"):
        one = runs[1][f"torch_init:{placement}"]
        assert torch.equal(one, single)  # one rank: the plain stream
        for world in (2, 4):
            got = runs[world][f"torch_init:{placement}"]
            if isinstance(got, str):  # refused: also not the single-process values
                continue
            assert not torch.equal(got, single), (placement, world)
        two, four = runs[2][f"torch_init:{placement}"], runs[4][f"torch_init:{placement}"]
        if not isinstance(two, str) and not isinstance(four, str):
            assert not torch.equal(two, four), placement


def test_rng_torch_refuses_dtensors(runs):
    for result in runs.values():
        message = result["rng_torch_on_dtensor"]
        assert message.startswith("rng='torch' cannot initialize DTensor parameters"), message
