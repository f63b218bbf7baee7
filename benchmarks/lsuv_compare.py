"""initlab.lsuv next to the ``lsuv`` package (0.3.0) on the same models and batches.

For each model: the per-layer output std after init, measured by independent hooks in
execution order (eval mode), the worst deviation from the target over plain layers, the
residual stream's scale (std of the last residual block's output over the input's std), the
number of forward passes (counted by a pre-hook on the model) and the median wall time of
``--repeat`` runs (orthogonal pre-init included in both). The ratio column is package time
over initlab time, measured in this run.

    python benchmarks/lsuv_compare.py [--repeat 3] [--threads 1] [--layers]

Models: tests/zoo.py's resnet_basic (BN, in-place residual adds), transformer_encoder
(nn.TransformerEncoder, post-norm), vit (pre-norm, MultiheadAttention) and a 3-layer tanh MLP
whose registration order (late, mid, early) is the reverse of its execution order.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import zoo
from initlab._core.rng import seeded_global_rng
from initlab.initializers.lsuv import lsuv


class Reordered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Linear(64, 8)
        self.mid = nn.Linear(64, 64)
        self.early = nn.Linear(16, 64)

    def forward(self, x):
        return self.late(torch.tanh(self.mid(torch.tanh(self.early(x)))))


def _reordered(seed: int = 0) -> zoo.ZooModel:
    with seeded_global_rng(seed):
        model = Reordered()
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(seed)) * 3 + 1
    return zoo.ZooModel(model, x, "mlp")


class Block(nn.Module):
    """An unnormalized residual block: x + fc2(relu(fc1(x)))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def _resmlp(seed: int = 0) -> zoo.ZooModel:
    with seeded_global_rng(seed):
        model = nn.Sequential(*[Block(64) for _ in range(16)])
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(seed))
    return zoo.ZooModel(model, x, "mlp")


def _vit_deep(seed: int = 0) -> zoo.ZooModel:
    with seeded_global_rng(seed):
        model = zoo.VisionTransformer(depth=12)
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    return zoo.ZooModel(model, x, "transformer")


MODELS = {
    "resnet_basic": lambda: zoo.resnet_basic(seed=0, batch=32),
    "transformer_encoder": lambda: zoo.transformer_encoder(seed=0, batch=16),
    "vit": lambda: zoo.vit(seed=0, batch=32),
    "vit_depth12": _vit_deep,
    "resmlp_16_blocks": _resmlp,
    "reordered_mlp": _reordered,
}
_KINDS = (nn.Linear, nn.Conv2d, nn.MultiheadAttention)


def _measure(model: nn.Module, example) -> tuple[dict[str, float], float | None]:
    stds: dict[str, float] = {}
    blocks: list[float] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, _KINDS) and not name.endswith("out_proj"):

            def hook(mod, args, out, name=name):
                y = out[0] if isinstance(out, tuple) else out
                stds.setdefault(name, y.std(correction=0).item())

            handles.append(module.register_forward_hook(hook))
        if type(module).__name__ in (
            "BasicBlock",
            "TransformerEncoderLayer",
            "EncoderBlock",
            "Block",
        ):
            handles.append(module.register_forward_hook(
                lambda mod, args, out: blocks.append(out.std().item())))  # fmt: skip
    model.eval()
    with torch.enable_grad():
        zoo.call(model, example)
    for h in handles:
        h.remove()
    x = example if isinstance(example, torch.Tensor) else None
    stream = blocks[-1] / x.std().item() if blocks and x is not None else None
    return stds, stream


def _run(which: str, name: str) -> tuple[float, int, dict[str, float], float | None, set[str]]:
    z = MODELS[name]()
    passes = [0]
    counter = z.model.register_forward_pre_hook(lambda *a: passes.__setitem__(0, passes[0] + 1))
    branches: set[str] = set()
    start = time.perf_counter()
    if which == "initlab":
        report = lsuv(z.model, z.example, seed=0)
        branches = {r.name for r in report.rows if r.kind == "branch"}
    else:
        import lsuv as package

        with seeded_global_rng(0):
            package.lsuv_with_singlebatch(z.model, z.example, verbose=False)
    seconds = time.perf_counter() - start
    counter.remove()
    stds, stream = _measure(z.model, z.example)
    return seconds, passes[0], stds, stream, branches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--layers", action="store_true", help="print every layer's std")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| model | tool | worst abs(std - 1), plain layers | layers off by > 0.1 | "
          "residual stream std / input std | forward passes | time (s, median) | "
          "package time / initlab time |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        times: dict[str, float] = {}
        for which in ("initlab", "package"):
            runs = [_run(which, name) for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in runs)
            times[which] = seconds
            _, passes, stds, stream, _ = runs[0]
            branches = runs[0][4] if which == "initlab" else _run("initlab", name)[4]
            plain = {k: v for k, v in stds.items() if k not in branches}
            worst = max(abs(v - 1) for v in plain.values())
            off = sum(abs(v - 1) > 0.1 for v in plain.values())
            ratio = f"{times['package'] / times['initlab']:.2f}" if which == "package" else ""
            stream_text = "-" if stream is None else f"{stream:.2f}"
            print(f"| {name} | {which} | {worst:.3f} | {off}/{len(plain)} | {stream_text} | "
                  f"{passes} | {seconds:.3f} | {ratio} |")  # fmt: skip
            if args.layers:
                for layer, std in stds.items():
                    mark = " (branch)" if layer in branches else ""
                    print(f"|   | {layer}{mark} | {std:.3f} | | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
