"""The vmap engine trains large ensembles in slices the allocator can reuse, numbers unchanged."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from _sweep_models import TinyTransformer
from initlab.bench.datasets import load
from initlab.bench.sweep import ensemble, slices
from initlab.bench.sweep.engine import build_member, train_ensemble
from initlab.bench.sweep.slices import activation_elements, member_slices, slices_for
from initlab.bench.sweep.spec import SweepSpec
from initlab.bench.train import as_dataset


@pytest.fixture(autouse=True)
def _own_rng():
    """The tests build modules and inputs with torch's global generator: leave it untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.mark.parametrize("members", [2, 3, 4, 5, 16, 31, 32, 33, 64])
@pytest.mark.parametrize("member_bytes", [1, 1 << 20, 3 << 20, 5 << 20, 1 << 30])
def test_member_slices_are_even_within_the_limit_and_at_least_two(members, member_bytes):
    limit = 8 << 20
    parts = member_slices(members, member_bytes, limit)
    sizes = [p.stop - p.start for p in parts]
    assert parts[0].start == 0 and parts[-1].stop == members
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
    assert max(sizes) - min(sizes) <= 1
    most = max(2, limit // member_bytes)
    if members < 4:
        assert len(parts) == 1
    else:
        assert min(sizes) >= 2
        assert len(parts) == min(math.ceil(members / most), members // 2)
        assert max(sizes) <= most or len(parts) == members // 2


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                 nn.Linear(32, 10))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _PairOutput(nn.Module):
    """A module returning a tuple: both tensors count."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x), torch.cat([x, x, x], dim=1)


class _RowByRow(nn.Module):
    """Calls its layer once per example: the two probes see different call lists."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.lin(row) for row in x])


def test_activation_elements_is_the_largest_output_per_example():
    x = torch.randn(5, 64)
    mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    assert activation_elements(mlp, x) == 128
    assert activation_elements(_Conv(), x) == 8 * 8 * 8  # the conv's 8 channels of 8 x 8
    assert activation_elements(nn.Linear(64, 3), x) == 64  # the input itself when larger
    assert activation_elements(_PairOutput(), torch.randn(5, 4)) == 6 + 12
    assert activation_elements(_RowByRow(), torch.randn(5, 4)) == 20


def test_the_probe_leaves_the_model_and_the_global_rng_as_they_were():
    model = nn.Sequential(nn.Linear(64, 16), nn.Dropout(0.5), nn.Linear(16, 10))
    model.train()
    x = torch.randn(3, 64)
    state = torch.random.get_rng_state()
    activation_elements(model, x)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_a_digits_sized_ensemble_is_sliced_below_the_limit():
    # 32 members of a 64-128-128-10 MLP on the 1,348 digits training examples: 0.7 MB per
    # member and activation, 22 MB for all 32 at once (the allocator's page-fault regime).
    data = as_dataset("digits")
    x = data.x_train.float()
    members = [nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                             nn.Linear(128, 10)) for _ in range(32)]  # fmt: skip
    parts = slices_for(members, x, torch.float32)
    member_bytes = 128 * x.shape[0] * 4
    assert len(parts) == math.ceil(32 / (slices.SLICE_BYTES // member_bytes))
    assert all((p.stop - p.start) * member_bytes <= slices.SLICE_BYTES for p in parts)
    assert slices_for(members[:3], x, torch.float32) == [slice(0, 3)]  # too few to slice
    # float64 activations take twice the bytes: twice the slices, rounded up
    doubles = slices_for([m.double() for m in members], x, torch.float64)
    assert len(doubles) == math.ceil(32 / (slices.SLICE_BYTES // (2 * member_bytes)))


def _tanh_mlp(width: int = 24) -> nn.Module:
    return nn.Sequential(nn.Linear(64, width), nn.Tanh(), nn.Linear(width, 10))


@pytest.mark.parametrize(
    ("factory", "dtype", "members", "expected"),
    [(_tanh_mlp, "float32", 7, [3, 2, 2]), (_tanh_mlp, "float64", 7, [3, 2, 2]),
     (TinyTransformer, "float32", 4, [2, 2])],
    ids=["mlp-float32", "mlp-float64", "transformer-float32"],
)  # fmt: skip
def test_slicing_does_not_change_any_member_s_numbers(monkeypatch, factory, dtype, members,
                                                      expected):  # fmt: skip
    d = load("digits")
    data = as_dataset((d.x_train[:64], d.y_train[:64], d.x_test[:16], d.y_test[:16]))
    width = 24 if factory is _tanh_mlp else 16
    spec = SweepSpec(model=factory, iterations=6, dtype=dtype)
    configs = [{"scheme": "he", "scale": 1.0 + i / 4, "activation": "tanh", "depth": 1,
                "width": width, "lr": 0.01, "optimizer": "adam", "data": "d", "seed": i}
               for i in range(members)]  # fmt: skip
    whole = train_ensemble([build_member(spec, c, data) for c in configs], configs, data, spec)
    sizes: list[int] = []
    real = ensemble._train_slice

    def spy(models, *args):
        sizes.append(len(models))
        return real(models, *args)

    monkeypatch.setattr(ensemble, "_train_slice", spy)
    monkeypatch.setattr(slices, "SLICE_BYTES", 1)  # two or three members a slice
    sliced = train_ensemble([build_member(spec, c, data) for c in configs], configs, data, spec)
    assert sizes == expected
    assert sliced == whole
    assert len({r["final_loss"] for r in whole}) == len(configs)


def test_the_probe_reads_a_residual_batchnorm_cnn_and_a_hugging_face_model():
    import zoo

    # ResNet-18's structure on 32 x 32 images: conv1 (stride 2) and bn1 give 16 x 16 x 16, the
    # largest output; in-place ReLUs and residual adds change nothing. BN stays in its mode.
    resnet = zoo.resnet_basic().model
    resnet.train()
    assert activation_elements(resnet, torch.randn(3, 3, 32, 32)) == 16 * 16 * 16
    assert resnet.training and resnet.bn1.num_batches_tracked.item() == 0
    # GPT-2 (small config, 16 tokens): the MLP's inner width 4 x 64 per token is the largest
    # module output; a ModelOutput (not a tensor or tuple) is passed over.
    gpt2 = zoo.gpt2().model
    ids = zoo.gpt2(batch=3).example["input_ids"]
    assert activation_elements(gpt2, ids) == 16 * 4 * 64
