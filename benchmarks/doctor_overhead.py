"""How much ``initlab.diagnose`` costs next to one plain forward + backward pass.

Targets: diagnose <= 1.2x a plain forward + backward of the same batch for GPT-2 and ResNet-50
(issue 25), <= 1.5x for the MLP (issues 5 and 11), both measured in this run, on three cases
(``--case``): a 50-layer, width-512 ReLU MLP (He init) with batch 256; GPT-2 small's shape
(12 layers, 768 wide, batch 4 x 128 tokens, built from its config, no download); torchvision's
ResNet-50 (``weights=None``) at 224 px (``--size`` and ``--resnet-batch`` make it smaller on a
slow CPU). Times ``--rounds x --repeat`` pairs, each a
plain pass then a diagnosis, interleaved so both see the same load; prints the medians and the
median of the per-pair ratios; exits 1 when a ratio is above the target.

Denormals are flushed (``torch.set_flush_denormal(True)``) so that a vanishing signal cannot make
either side slow; with He init the signal does not vanish anyway.

    python benchmarks/doctor_overhead.py [--case mlp|gpt2|resnet50|all] [--depth 50]
        [--width 512] [--batch 256] [--tokens 128] [--resnet-batch 8] [--size 224]
        [--repeat 7] [--rounds 3] [--threads N] [--device cuda]

On a CPU shared with other jobs, ``--threads 1`` gives stable numbers (oversubscribed OpenMP
threads make every timing noisy); on a CPU the clock is the process's CPU time
(``time.process_time``), which the other jobs do not inflate; on accelerators, wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types

import torch

import initlab

TARGETS = {"mlp": 1.5, "gpt2": 1.2, "resnet50": 1.2}


# The clock: wall time on accelerators (synchronized); on a CPU the process's CPU time, which
# other jobs on a shared machine do not inflate (with --threads 1 it is the one thread's time).
_CLOCK = time.perf_counter


def _time(fn, repeat: int, *, warm: bool = True) -> float:
    if warm:
        fn()  # warm up (allocator, thread pool)
    times = []
    for _ in range(repeat):
        start = _CLOCK()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(_CLOCK() - start)
    return statistics.median(times)


def _stub_torchvision_ops() -> None:
    """The registry's torchvision wheel is a CUDA build whose fake-op registrations fail beside
    a CPU torch; the model definitions use no custom ops (tests/conftest.py does the same)."""
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )


def _mlp_case(args, device):
    model = initlab.mlp([args.width] * args.depth + [1]).to(device)
    initlab.init_model(model, "he_normal", seed=0)
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.batch, args.width, generator=generator, device=device)
    label = f"MLP {args.depth} layers, width {args.width}, batch {args.batch}"
    return label, model, x, lambda out: out


def _gpt2_case(args, device):
    """GPT-2 small's shape (12 layers, 768 wide, 50257 vocabulary) from its config: no
    download. Batch 4 x 128 tokens (--tokens)."""
    _stub_torchvision_ops()  # transformers imports torchvision
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(n_layer=args.gpt2_layers)).to(device)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (4, args.tokens), generator=generator)
    label = f"GPT-2 {args.gpt2_layers} layers, 768 wide, batch 4 x {args.tokens} tokens"
    return label, model, {"input_ids": ids.to(device)}, lambda out: out.logits


def _resnet_case(args, device):
    """torchvision's ResNet-50 at its default init, batch --resnet-batch at --size px (224 is
    ResNet-50 proper; smaller on a slow CPU)."""
    _stub_torchvision_ops()
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.resnet50(weights=None).to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.resnet_batch, 3, args.size, args.size, generator=generator)
    label = f"torchvision ResNet-50, batch {args.resnet_batch} at {args.size}px"
    return label, model, x.to(device), lambda out: out


CASES = {"mlp": _mlp_case, "gpt2": _gpt2_case, "resnet50": _resnet_case}


def _measure(args, device, case) -> float:
    label, model, inputs, main_output = CASES[case](args, device)
    call = (lambda: model(**inputs)) if isinstance(inputs, dict) else (lambda: model(inputs))
    with torch.no_grad():
        shape = main_output(call()).shape
    generator = torch.Generator(device=device).manual_seed(0)
    projection = torch.randn(shape, generator=generator, device=device)
    model.train()

    def plain() -> None:
        out = main_output(call())
        loss = (out * projection).sum() / shape[0]
        loss.backward()
        model.zero_grad(set_to_none=True)

    def doctor() -> None:
        initlab.diagnose(model, inputs)

    # Interleave single timings so that both see the same machine load; medians of each and
    # the median of the per-pair ratios (the noise of a shared machine cancels in a pair).
    plain(), doctor()  # warm up (allocator, thread pool, cached discovery)
    plain_s, doctor_s = [], []
    for _ in range(args.rounds * args.repeat):
        plain_s.append(_time(plain, 1, warm=False))
        doctor_s.append(_time(doctor, 1, warm=False))
    base, cost = statistics.median(plain_s), statistics.median(doctor_s)
    ratio = statistics.median(d / p for d, p in zip(doctor_s, plain_s, strict=True))
    print(
        f"{label} on {device} ({torch.get_num_threads()} threads, denormals flushed, "
        f"{'CPU' if _CLOCK is time.process_time else 'wall'} time):\n"
        f"  plain forward+backward  {1e3 * base:9.1f} ms (median of {len(plain_s)})\n"
        f"  initlab.diagnose        {1e3 * cost:9.1f} ms (median, interleaved)\n"
        f"  ratio                   {ratio:9.3f}  (median of paired ratios; "
        f"target <= {TARGETS[case]})",
        flush=True,
    )
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--gpt2-layers", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--resnet-batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 on a busy shared machine)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    global _CLOCK
    _CLOCK = time.process_time if device.type == "cpu" else time.perf_counter
    cases = list(CASES) if args.case == "all" else [args.case]
    ratios = {case: _measure(args, device, case) for case in cases}
    return 0 if all(r <= TARGETS[case] for case, r in ratios.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
