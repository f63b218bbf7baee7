"""Draw the figures of the theory docs pages (docs/img/*.png) and print the numbers quoted
there: LSUV on resnet_basic, the edge of chaos for tanh, coordinate checks of an
nn.TransformerEncoder in standard parametrization, SPPs of resnet_bottleneck and of an
unnormalized residual MLP before/after LSUV, Jacobian spectra of tanh MLPs and
nn.TransformerEncoder.

    python benchmarks/theory_figures.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import initlab
import zoo
from initlab._core.rng import seeded_global_rng


class _Encoder(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Linear(16, width)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.readout = nn.Linear(width, 10)

    def forward(self, x):
        return self.readout(self.encoder(self.embed(x)).mean(1))


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def _tanh_mlp(depth: int, width: int, orthogonal: bool, sigma_w2: float, sigma_b2: float):
    with seeded_global_rng(0):
        layers = [nn.Linear(width, width) for _ in range(depth)]
    g = torch.Generator().manual_seed(0)
    mods = []
    for layer in layers:
        if orthogonal:
            nn.init.orthogonal_(layer.weight, gain=sigma_w2**0.5, generator=g)
        else:
            nn.init.normal_(layer.weight, std=(sigma_w2 / width) ** 0.5, generator=g)
        nn.init.normal_(layer.bias, std=sigma_b2**0.5, generator=g)
        mods += [layer, nn.Tanh()]
    return nn.Sequential(*mods)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/img")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)

    z = zoo.resnet_basic(seed=0, batch=32)
    report = initlab.lsuv(z.model, z.example, seed=0)
    print("== lsuv resnet_basic\n", report)
    initlab.plot_lsuv(report, out / "lsuv_resnet_basic.png")

    initlab.plot_edge_of_chaos("tanh", out / "edge_of_chaos_tanh.png", sigma_b2=0.05)
    for b in (0.0, 0.01, 0.05, 0.1, 0.2):
        print("critical tanh", b, initlab.critical("tanh", b).sigma_w2)

    x = torch.randn(32, 8, 16, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))
    coord = initlab.coord_check(_Encoder, [32, 64, 128, 256], x, target=y, steps=3)
    print("== coord check TransformerEncoder (SP, Adam 1e-2)\n", coord)
    initlab.plot_coord_check(coord, out / "coord_check_encoder.png")

    z = zoo.resnet_bottleneck(seed=0)
    result = initlab.spp(z.model, input_shape=(3, 32, 32), batch=32)
    print("== spp resnet_bottleneck\n", result)
    initlab.plot_spp(result, out / "spp_resnet_bottleneck.png")

    with seeded_global_rng(0):
        resmlp = nn.Sequential(*[_Block(64) for _ in range(16)])
    g = torch.Generator().manual_seed(0)
    for block in resmlp:
        for fc in (block.fc1, block.fc2):
            nn.init.normal_(fc.weight, std=(2 / 64) ** 0.5, generator=g)
            nn.init.zeros_(fc.bias)
    xr = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    before = initlab.spp(resmlp, xr)
    print("== spp unnormalized residual MLP, He init\n", before)
    initlab.plot_spp(before, out / "spp_resmlp_he.png")
    initlab.lsuv(resmlp, xr, seed=0)
    after = initlab.spp(resmlp, xr)
    print("== same after lsuv\n", after)
    initlab.plot_spp(after, out / "spp_resmlp_lsuv.png")

    crit = initlab.critical("tanh", 1e-4).sigma_w2
    xt = torch.randn(1, 128, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for depth in (8, 32, 128):
        for orth in (False, True):
            net = _tanh_mlp(depth, 128, orth, crit, 1e-4).double()
            spec = initlab.jacobian_spectrum(net, xt, steps=128, probes=1)
            name = "orthogonal" if orth else "gaussian"
            print(
                f"jacobian tanh depth {depth} {name}: s_max {spec.s_max:.3g} "
                f"median {spec.s_median:.3g} spread {spec.spread:.3g} mean s2 {spec.mean_s2:.3g}"
            )
            if depth == 32:
                initlab.plot_jacobian(spec, out / f"jacobian_tanh32_{name}.png")
    z = zoo.transformer_encoder(seed=0, batch=2)
    z.model.eval()
    spec = initlab.jacobian_spectrum(z.model, z.example, steps=40, probes=2)
    print("== jacobian transformer_encoder\n", spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
