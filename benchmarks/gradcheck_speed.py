"""Gradient-check speed and reliability on an MLP with about 100k parameters.

Same run, same model, same loss (binary cross-entropy on logits, float64):

* ``initlab.gradcheck(mode="fast")`` with a fixed number of directions per tensor;
* ``initlab.gradcheck(mode="full")``: every entry by central differences (vmap-batched);
* ``torch.autograd.gradcheck`` on the same function of the flat parameter vector;

then the fraction of 20 seeds in which fast mode catches a planted bug (a custom autograd
Function that scales one tensor's gradient: wrong sign, factor 2, 1.1 or 0.5, in a different
tensor each seed) *and names that tensor as the worst*, and how often it raises a false alarm
on the same models without the bug. Targets: fast >= 100x faster than full; 20/20 caught.

Then real models (from ``tests/zoo.py``): fast mode on the ResNet-18-structured
zoo model at 32x32 (batch 8, batch norm in training mode, in-place residual adds that vmap
cannot batch), GPT-2, BERT, Llama and T5 (small Hugging Face configs), with the time of one
plain float64 forward+backward of the same model as the baseline measured in the same run,
and whether a planted wrong-sign bug is found and named. The two are timed in turn (baseline,
check, baseline, check, ...) after one untimed warm-up check, and the medians compared: on a
shared machine the ratio carries over, the seconds do not.

    python benchmarks/gradcheck_speed.py            # ~100k parameters, full mode ~minutes
    python benchmarks/gradcheck_speed.py --quick    # a 10k-parameter net, seconds
    python benchmarks/gradcheck_speed.py --threads 1  # on a shared, busy machine
    python benchmarks/gradcheck_speed.py --zoo-only   # only the real models
    python benchmarks/gradcheck_speed.py --resnet-only --threads 1  # the ResNet-18 figure
    python benchmarks/gradcheck_speed.py --cnn-only --threads 1  # the three kinked CNNs

``--cnn-only``: the CNNs full of kinks (ReLU6, hardswish, max-pool) that issue 25 found:
torchvision ``mobilenet_v2``, ``shufflenet_v2_x0_5`` and timm ``regnety_002``, 10 classes,
batch 2 at 32x32, each in train mode (batch statistics; dropout switched off) and eval mode:
loss evaluations, the ratio of the check's time to one float64 forward+backward (target:
at most 100x), the verdict, and whether a planted wrong sign in one tensor is found.

Denormals are flushed (``torch.set_flush_denormal(True)``), as for every benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import initlab
from initlab.gradient_check.check import gradcheck, plant_bug

FACTORS = (-1.0, 2.0, 1.1, 0.5)


def timed(fn, repeat: int = 1):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def interleaved(baseline, fn, repeat: int):
    """``fn``'s result and the medians of ``baseline``'s and ``fn``'s times, measured in turn
    (baseline, fn, baseline, fn, ...), so a load that comes and goes hits both alike."""
    base_times, times, result = [], [], None
    for _ in range(repeat):
        _, seconds = timed(baseline)
        base_times.append(seconds)
        result, seconds = timed(fn)
        times.append(seconds)
    return result, statistics.median(base_times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="2,300,300,30,1")
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--directions", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a 10k-parameter net")
    parser.add_argument("--skip-torch", action="store_true", help="skip torch.autograd.gradcheck")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 on a busy, shared machine)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--zoo-only", action="store_true", help="only the real models")
    parser.add_argument("--resnet-only", action="store_true", help="only the ResNet-18 case")
    parser.add_argument("--cnn-only", action="store_true", help="only the three kinked CNNs")
    parser.add_argument("--no-plant", action="store_true", help="skip the planted-bug checks")
    parser.add_argument("--models", default=None, help="--cnn-only: comma-separated subset")
    parser.add_argument("--modes", default="train,eval", help="--cnn-only: train, eval or both")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (median)")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cnn_only:
        cnn_checks(args)
        return
    if not (args.zoo_only or args.resnet_only):
        mlp_checks(args)
    zoo_checks(args)


ZOO_CASES = {  # model -> (factory options, parameter the planted bug breaks)
    "resnet_basic": ({"batch": 8, "size": 32}, "layer2.0.conv1.weight"),
    "gpt2": ({}, "transformer.h.0.mlp.c_fc.weight"),
    "bert": ({}, "bert.encoder.layer.0.intermediate.dense.weight"),
    "llama": ({}, "model.layers.0.mlp.up_proj.weight"),
    "t5": ({}, "encoder.block.0.layer.1.DenseReluDense.wi.weight"),
}


def zoo_checks(args: argparse.Namespace) -> None:
    import copy
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from initlab.gradient_check.model_io import predictions, switch_off_randomness
    from zoo import ZOO

    print(f"\nreal models, fast mode (up to 7 directions per tensor), dropout off, float64, "
          f"{torch.get_num_threads()} threads; median of {args.repeat} interleaved runs after "
          "a warm-up; ratio = check / one float64 forward+backward of the same model, same "
          "run:")  # fmt: skip
    print(f"{'model':<14} {'params':>9} {'tensors':>7} {'evals':>6} {'fwd+bwd s':>9} "
          f"{'check s':>8} {'ratio':>6}  verdict   planted bug")  # fmt: skip
    cases = {"resnet_basic": ZOO_CASES["resnet_basic"]} if args.resnet_only else ZOO_CASES
    for name, (options, planted) in cases.items():
        zoo = ZOO[name](seed=0, **options)
        inputs = zoo.example
        if isinstance(inputs, dict):
            targets = inputs["input_ids"]
        else:
            targets = torch.arange(inputs.shape[0]) % 4
        model64 = copy.deepcopy(zoo.model)
        switch_off_randomness(model64)
        model64 = model64.double()
        x64 = {k: v for k, v in inputs.items()} if isinstance(inputs, dict) else inputs.double()

        def step(model64=model64, x64=x64, targets=targets):
            out = model64(**x64) if isinstance(x64, dict) else model64(x64)
            logits = predictions(out)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            loss.backward()

        def check(model=zoo.model, inputs=inputs, targets=targets):
            return gradcheck(model, "cross_entropy", inputs, targets, mode="fast",
                             dropout="off")  # fmt: skip

        check()  # warm-up: first-use imports (vmap's decompositions) are not timed
        result, t_step, t_check = interleaved(step, check, args.repeat)
        buggy = gradcheck(plant_bug(zoo.model, planted, -1.0), "cross_entropy", inputs,
                          targets, mode="fast", dropout="off")  # fmt: skip
        found = buggy.verdict == "bug" and buggy.worst_tensor == planted
        params = sum(p.numel() for p in zoo.model.parameters())
        print(f"{name:<14} {params:>9,} {len(result.tensors):>7} {result.evaluations:>6} "
              f"{t_step:>9.4f} {t_check:>8.2f} {t_check / t_step:>6.0f}  {result.verdict:<9} "
              f"{'found, named' if found else 'MISSED: ' + buggy.verdict}")  # fmt: skip


CNN_CASES = {  # name -> (builder, parameter the planted bug breaks)
    # (a tensor with a gradient clear of round-off in both modes: batch norm in training mode
    # removes a constant shift, so the bias before it has none; RegNetY's main branches end
    # in a zero-initialised batch norm scale)
    "mobilenet_v2": ("torchvision", "classifier.1.bias"),
    "shufflenet_v2_x0_5": ("torchvision", "stage3.0.branch2.3.weight"),
    "regnety_002": ("timm", "s2.b1.downsample.conv.weight"),
}


def build_cnn(name: str) -> torch.nn.Module:
    """One of ``CNN_CASES`` with 10 classes, built from its config (no weights downloaded)."""
    import sys
    import types

    # the registry's torchvision wheel is a CUDA build (see tests/conftest.py)
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if CNN_CASES[name][0] == "timm":
            import timm

            return timm.create_model(name, pretrained=False, num_classes=10)
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=10)


def cnn_checks(args: argparse.Namespace) -> None:
    import copy

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 32, 32, generator=g), torch.tensor([3, 7])
    print(f"kinked CNNs, fast mode, batch 2 at 32x32, float64, dropout off, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; median of "
          f"{args.repeat} interleaved runs; ratio = check / one float64 forward+backward of "
          "the same model in the same mode, same run (target <= 100x):")  # fmt: skip
    print(f"{'model':<19} {'mode':<5} {'params':>9} {'tensors':>7} {'evals':>6} "
          f"{'fwd+bwd s':>9} {'check s':>8} {'ratio':>6}  verdict       planted bug")  # fmt: skip
    chosen = args.models.split(",") if args.models else list(CNN_CASES)
    for name in chosen:
        planted = CNN_CASES[name][1]
        for training in [m == "train" for m in args.modes.split(",")]:
            model = build_cnn(name).train(training)
            model64 = copy.deepcopy(model).double()
            for m in model64.modules():  # the baseline leaves running statistics alone too
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.track_running_stats = m.track_running_stats and not training
                if isinstance(m, torch.nn.Dropout):
                    m.eval()

            def step(model64=model64):
                F.cross_entropy(model64(x.double()), y).backward()

            def check(model=model):
                return gradcheck(model, "cross_entropy", x, y, mode="fast", dropout="off")

            for _ in range(2):
                step()  # warm-up
            result, t_step, t_check = interleaved(step, check, args.repeat)
            found = "skipped"
            if not args.no_plant:
                buggy = gradcheck(plant_bug(model, planted, -1.0), "cross_entropy", x, y,
                                  mode="fast", dropout="off")  # fmt: skip
                hit = buggy.verdict == "bug" and buggy.worst_tensor == planted
                found = "found, named" if hit else f"MISSED: {buggy.verdict} {buggy.worst_tensor}"
            params = sum(p.numel() for p in model.parameters())
            mode = "train" if training else "eval"
            ratio = t_check / t_step
            print(f"{name:<19} {mode:<5} {params:>9,} {len(result.tensors):>7} "
                  f"{result.evaluations:>6} {t_step:>9.4f} {t_check:>8.2f} {ratio:>6.0f}  "
                  f"{result.verdict:<13} {found}", flush=True)  # fmt: skip


def mlp_checks(args: argparse.Namespace) -> None:
    dims = [2, 100, 80, 20, 1] if args.quick else [int(d) for d in args.dims.split(",")]
    data = initlab.datasets.load("circles")
    x = data.x_train[: args.examples].double().to(args.device)
    y = data.y_train[: args.examples].double().unsqueeze(1).to(args.device)

    def build(seed: int) -> initlab.MLP:
        with torch.random.fork_rng(devices=[]):
            net = initlab.mlp(dims)
        initlab.init_model(net, "he_normal", seed=seed)
        return net.to(args.device)

    net = build(0)
    count = sum(p.numel() for p in net.parameters())
    threads = torch.get_num_threads()
    print(f"MLP {dims}: {count} parameters, {x.shape[0]} examples, torch "
          f"{torch.__version__}, {threads} threads, device {args.device}")  # fmt: skip

    fast, t_fast = timed(
        lambda: gradcheck(net, "bce", x, y, mode="fast", directions=args.directions), repeat=5
    )
    full, t_full = timed(lambda: gradcheck(net, "bce", x, y, mode="full"))
    rows = [
        ("initlab fast", fast.evaluations, t_fast, fast.verdict, f"{fast.rel:.2e}"),
        ("initlab full", full.evaluations, t_full, full.verdict, f"{full.rel:.2e}"),
    ]
    t_torch = None
    if not args.skip_torch:
        work = {k: v.detach().double() for k, v in net.named_parameters()}
        net64 = build(0).double()
        shapes = [(k, v.shape, v.numel()) for k, v in work.items()]

        def loss_of(flat: torch.Tensor) -> torch.Tensor:
            params, offset = {}, 0
            for name, shape, numel in shapes:
                params[name] = flat[offset : offset + numel].view(shape)
                offset += numel
            logits = torch.func.functional_call(net64, params, (x,))
            return F.binary_cross_entropy_with_logits(logits, y)

        flat = torch.cat([v.reshape(-1) for v in work.values()]).requires_grad_(True)
        ok, t_torch = timed(
            lambda: torch.autograd.gradcheck(loss_of, (flat,), eps=1e-7, raise_exception=False)
        )
        rows.append(("torch.autograd.gradcheck", 2 * count, t_torch, "pass" if ok else "fail", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'check':<{width}}  {'loss evals':>10}  {'seconds':>9}  verdict      rel diff")
    for name, evals, seconds, verdict, rel in rows:
        print(f"{name:<{width}}  {evals:>10}  {seconds:>9.3f}  {verdict:<11}  {rel}")
    print(f"\nfull / fast time: {t_full / t_fast:.0f}x (target >= 100x)")
    if t_torch is not None:
        print(f"torch.autograd.gradcheck / fast time: {t_torch / t_fast:.0f}x; "
              f"torch.autograd.gradcheck / full time: {t_torch / t_full:.2f}x")  # fmt: skip

    names = [n for n, _ in net.named_parameters()]
    caught, false_alarms, lines = 0, 0, []
    for seed in range(args.seeds):
        model = build(seed)
        parameter, factor = names[seed % len(names)], FACTORS[seed % len(FACTORS)]
        clean = gradcheck(model, "bce", x, y, mode="fast", directions=args.directions, seed=seed)
        result = gradcheck(plant_bug(model, parameter, factor), "bce", x, y, mode="fast",
                           directions=args.directions, seed=seed)  # fmt: skip
        hit = result.verdict == "bug" and result.worst_tensor == parameter
        caught += hit
        false_alarms += clean.verdict != "correct"
        lines.append(f"  seed {seed:2d}: {parameter:<15} x {factor:<4g} -> {result.verdict:<11} "
                     f"worst {result.worst_tensor:<15} rel {result[parameter].rel:.3g}"
                     f"{'' if hit else '  MISSED'}; clean model: {clean.verdict}")  # fmt: skip
    print("\n".join(lines))
    print(f"\nfast mode caught the planted bug and named its tensor in {caught}/{args.seeds} "
          f"seeds (target {args.seeds}/{args.seeds}); false alarms on the clean models: "
          f"{false_alarms}/{args.seeds}")  # fmt: skip


if __name__ == "__main__":
    main()
