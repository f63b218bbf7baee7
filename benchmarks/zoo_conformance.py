"""Conformance of initlab on real models (issue 24): named checks over the registry of
``tests/real_zoo.py`` (every torchvision classification model, timm and Hugging Face
architectures from small configs, PyTorch's LSTM/GRU/TransformerEncoder).

Each check is a function ``check(entry) -> (ok, detail)`` in :data:`CHECKS`: ``ok`` is
``True`` (✓), ``False`` (✗) or ``None`` (–, nothing to check); an exception is a failure with
its one-line message. The init checks, all on ``init_model(model, "he_normal", seed=0)``:

- ``init_runs``: it runs, with no ``example=``;
- ``first_loss``: then the cross-entropy of the model's logits on its example at batch 16
  (train mode, labels from a private generator) is within 15% of ln(classes); for
  CLIP/SigLIP, whose image-text logits have one column per example, ln(batch);
- ``keeps_intent``: frozen parameters (``requires_grad=False``) and buffers are bit-identical
  before and after;
- ``same_weights``: a second Python process with a different global torch seed gets the same
  state dict (a SHA-256 of every tensor; one worker process answers for all models, working
  while this one runs the other checks);
- ``example_agrees``: with ``example=entry.example()`` the plan's rows agree with the plan
  without it on the activation and the target std (relative 1e-6);

and the doctor's (issue 25):

- ``doctor_default``: ``initlab.diagnose`` on the model at its framework's default init (not
  initlab's), on its example, says *healthy*.

To add a column, write ``def my_check(entry) -> tuple[bool | None, str]`` and add it to
:data:`CHECKS`; :func:`pristine` and :func:`initialized` give the built model and its init
without building twice (at most three copies of the model are alive: ``regnet_y_128gf`` needs
about 8 GB here and 3 GB in the worker; ``--max-params`` skips such models). Denormals are
flushed (``torch.set_flush_denormal``): he_normal on a
deep model without normalization can vanish, and subnormal floats are 10x slower on CPUs.

    python3 benchmarks/zoo_conformance.py --family hf
    python3 benchmarks/zoo_conformance.py --family timm,torchvision --max-params 5e6
    python3 benchmarks/zoo_conformance.py --only hf/gpt2 resnet18 --checks init_runs,first_loss
"""

from __future__ import annotations

import argparse
import copy
import difflib
import hashlib
import math
import os
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
# The registry's torchvision wheel is a CUDA build; see real_zoo.import_vision.
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import initlab  # noqa: E402
import real_zoo  # noqa: E402
from initlab._core.files import atomic_write  # noqa: E402
from real_zoo import REGISTRY, RealModel  # noqa: E402

SCHEME = "he_normal"
SEED = 0
LOSS_TOLERANCE = 0.15  # first loss within 15% of ln(classes)
# first_loss runs the example at this batch: with batch 2, the random labels alone move the loss
# of unit-variance logits over 10 classes by about 25% of ln 10; with 16, by about 9%.
LOSS_BATCH = 16
STD_RTOL = 1e-6
MAIN_GLOBAL_SEED = 1  # the two processes of same_weights start from different global seeds
WORKER_GLOBAL_SEED = 987_654

Result = tuple[bool | None, str]
Check = Callable[[RealModel], Result]


# ---------------------------------------------------------------------- per-model memo
class _Memo:
    """The current model's build and init, made once and shared by the checks (an exception
    is kept and raised again for every check that needs the value)."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.values: dict[str, Any] = {}

    def get(self, entry: RealModel, key: str, make: Callable[[], Any]) -> Any:
        if self.name != entry.name:
            self.name, self.values = entry.name, {}
        if key not in self.values:
            try:
                self.values[key] = (True, make())
            except Exception as error:
                self.values[key] = (False, error)
        ok, value = self.values[key]
        if not ok:
            raise value
        return value

    def clear(self) -> None:
        self.name, self.values = None, {}


_MEMO = _Memo()


def pristine(entry: RealModel) -> nn.Module:
    """The model as its framework builds it (seed 0); do not change it, copy it."""
    return _MEMO.get(entry, "pristine", lambda: entry.build(0))


def fresh(entry: RealModel) -> nn.Module:
    """A copy of :func:`pristine` to change."""
    return copy.deepcopy(pristine(entry))


def _init(model: nn.Module, **options: Any) -> tuple[initlab.InitReport, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = initlab.init_model(model, SCHEME, seed=SEED, **options)
    return report, [f"{w.category.__name__}: {w.message}".splitlines()[0] for w in caught]


def initialized(entry: RealModel) -> tuple[nn.Module, Any, list[str]]:
    """``(model, report, warnings)`` of ``init_model(copy of pristine, SCHEME, seed=SEED)``
    without an example; do not change the model, copy it."""

    def make() -> tuple[nn.Module, Any, list[str]]:
        model = fresh(entry)
        report, caught = _init(model)
        return model, report, caught

    return _MEMO.get(entry, "initialized", make)


def state_hash(model: nn.Module) -> str:
    """SHA-256 of every tensor of the state dict (name, dtype, shape, bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- the checks
def check_init_runs(entry: RealModel) -> Result:
    _, report, caught = initialized(entry)
    kept = len(report.kept())
    detail = f"{len(report.rows)} rows, {kept} kept"
    if caught:
        detail += f"; {len(caught)} warning(s): {caught[0][:80]}"
    return True, detail


def check_first_loss(entry: RealModel) -> Result:
    model = initialized(entry)[0]
    saved = [(b, b.clone()) for b in model.buffers()]  # the forward moves BN statistics
    try:
        logits = real_zoo.forward_logits(entry, model, entry.example(LOSS_BATCH)).float()
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
    columns = entry.columns(LOSS_BATCH)
    flat = logits.reshape(-1, logits.shape[-1])
    labels = torch.randint(columns, (flat.shape[0],), generator=torch.Generator().manual_seed(0))
    loss = F.cross_entropy(flat, labels).item()
    what = f"ln {columns}" if entry.classes is not None else f"ln(batch={columns}), contrastive"
    if not math.isfinite(loss):
        return False, f"loss {loss} ({what})"
    ratio = loss / math.log(columns)
    return abs(ratio - 1) <= LOSS_TOLERANCE, f"{ratio:.3g}x {what}"


def _kept_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    kept = {f"buffer {n}": b for n, b in model.named_buffers()}
    kept |= {f"frozen {n}": p for n, p in model.named_parameters() if not p.requires_grad}
    return kept


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def check_keeps_intent(entry: RealModel) -> Result:
    before = _kept_tensors(pristine(entry))
    if not before:
        return None, "no frozen parameters, no buffers"
    after = _kept_tensors(initialized(entry)[0])
    changed = [n for n, t in before.items() if n not in after or not _same(t, after[n])]
    if changed:
        return False, f"{len(changed)}/{len(before)} changed: {', '.join(changed[:3])}"
    return True, f"{len(before)} kept"


class HashWorker:
    """A second Python process, global torch seed :data:`WORKER_GLOBAL_SEED`, that builds,
    initializes and hashes the models it is sent (one per line on stdin; ``HASH name value``
    or ``ERROR name message`` on stdout) while this process runs the other checks."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])]
        )
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--hash-worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        self.answers: dict[str, tuple[str, str]] = {}

    def send(self, name: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()

    def answer(self, name: str) -> tuple[str, str]:
        assert self.proc.stdout is not None
        while name not in self.answers:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the hash worker exited (code {self.proc.poll()})")
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind in ("HASH", "ERROR"):
                got, _, value = rest.partition(" ")
                self.answers[got] = (kind, value)
        return self.answers.pop(name)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


_WORKER: HashWorker | None = None


def check_same_weights(entry: RealModel) -> Result:
    if _WORKER is None:
        raise RuntimeError("no hash worker: run through main()")
    kind, value = _WORKER.answer(entry.name)
    if kind == "ERROR":
        return False, f"other process: {value}"
    mine = state_hash(initialized(entry)[0])
    if mine != value:
        return False, f"hashes differ ({mine[:8]} vs {value[:8]})"
    return True, f"sha256 {mine[:8]}"


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=STD_RTOL, abs_tol=0.0)


def check_example_agrees(entry: RealModel) -> Result:
    _, without, _ = initialized(entry)
    model = fresh(entry)
    with_example, _ = _init(model, example=entry.example())
    del model
    rows_a = {(r.parameter, i): r for i, r in enumerate(without.rows)}
    rows_b = {(r.parameter, i): r for i, r in enumerate(with_example.rows)}
    if [k[0] for k in rows_a] != [k[0] for k in rows_b]:
        return False, f"different rows: {len(rows_a)} without example, {len(rows_b)} with"
    differ, spelling = [], 0
    for key, a in rows_a.items():
        b = rows_b[key]
        if a.activation != b.activation or not _close(a.target_std, b.target_std):
            differ.append(f"{a.parameter}: {a.activation}/{b.activation}")
            same_std = _close(a.target_std, b.target_std)
            spelling += same_std and str(a.activation).lower() == str(b.activation).lower()
    if differ:
        shown = ", ".join(differ[:2])
        note = f", {spelling} only in spelling" if spelling else ""
        return (
            False,
            f"{len(differ)}/{len(rows_a)} rows differ{note} (without/with example): {shown}",
        )
    return True, f"{len(rows_a)} rows agree"


def check_doctor_default(entry: RealModel) -> Result:
    """Issue 25: the doctor calls the framework's default init healthy (its pass runs in
    training mode with dropout and stochastic depth off), on the model's own example."""
    model = fresh(entry)
    with torch.random.fork_rng(devices=[]):
        diagnosis = initlab.diagnose(model, entry.example(), samples=0)
    kinds = diagnosis.kinds
    return kinds == ["healthy"], ", ".join(kinds)


CHECKS: dict[str, Check] = {
    "init_runs": check_init_runs,
    "first_loss": check_first_loss,
    "keeps_intent": check_keeps_intent,
    "same_weights": check_same_weights,
    "example_agrees": check_example_agrees,
    "doctor_default": check_doctor_default,
}


# ---------------------------------------------------------------------- running
def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:160]


def run_checks(entry: RealModel, checks: dict[str, Check]) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for name, check in checks.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[name] = check(entry)
        except Exception as error:
            results[name] = (False, one_line(error))
    return results


def _mark(ok: bool | None) -> str:
    return {True: "✓", False: "✗", None: "–"}[ok]


def _cell(result: Result) -> str:
    ok, detail = result
    detail = detail.replace("|", "\\|").replace("\n", " ")
    return f"{_mark(ok)} {detail}".strip()


def _params(entry: RealModel) -> str:
    params = entry.params
    return "?" if params is None else f"{params / 1e6:.2f}M"


def summary(rows: list[tuple[RealModel, dict[str, Result]]], checks: list[str]) -> str:
    """Per family and check: passed / failed / not applicable."""
    families = sorted({e.family for e, _ in rows})
    lines = ["| family | models | " + " | ".join(checks) + " |",
             "|---|---|" + "---|" * len(checks)]  # fmt: skip
    for family in [*families, "all"]:
        chosen = [r for e, r in rows if family in ("all", e.family)]
        cells = []
        for check in checks:
            oks = [r[check][0] for r in chosen]
            cells.append(f"{oks.count(True)} ✓ / {oks.count(False)} ✗ / {oks.count(None)} –")
        lines.append(f"| {family} | {len(chosen)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(rows: list[tuple[RealModel, dict[str, Result]]], checks: list[str],
             command: str, seconds: float) -> str:  # fmt: skip
    import timm
    import torchvision
    import transformers

    head = [
        "# Model zoo conformance",
        "",
        f"Written by `{command}` ({seconds:.0f} s; torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, timm {timm.__version__}, transformers "
        f"{transformers.__version__}). Each model is the real class from `tests/real_zoo.py`, "
        f"built from a small config with its framework's default init, then "
        f'`init_model(model, "{SCHEME}", seed={SEED})`. See `benchmarks/zoo_conformance.py` '
        "for what each check asks. ✓ pass, ✗ fail, – nothing to check.",
        "",
        "## Summary",
        "",
        summary(rows, checks),
        "",
        "## Per model",
        "",
        "| model | family | kind | params | " + " | ".join(checks) + " |",
        "|---|---|---|---|" + "---|" * len(checks),
    ]
    for entry, results in rows:
        cells = " | ".join(_cell(results[c]) for c in checks)
        head.append(f"| {entry.name} | {entry.family} | {entry.kind} | {_params(entry)} | "
                    f"{cells} |")  # fmt: skip
    return "\n".join(head) + "\n"


def _chosen(args: argparse.Namespace) -> list[str]:
    if args.only:
        unknown = [n for n in args.only if n not in REGISTRY]
        if unknown:
            near = difflib.get_close_matches(unknown[0], list(REGISTRY), n=3)
            raise SystemExit(f"--only: no model {unknown[0]!r} in the registry; closest: "
                             f"{', '.join(near) or 'none'}")  # fmt: skip
        chosen = list(args.only)
    else:
        chosen = list(REGISTRY)
    families = set(args.family.split(",")) if args.family else None
    valid = {"torchvision", "timm", "hf", "torch"}
    if families and not families <= valid:
        raise SystemExit(f"--family: {sorted(families - valid)} not among {sorted(valid)}")
    limit = args.max_params
    return [
        n for n in chosen
        if (families is None or REGISTRY[n].family in families)
        and (limit is None or (REGISTRY[n].params or math.inf) <= limit)
    ]  # fmt: skip


def _hash_worker() -> None:
    torch.manual_seed(WORKER_GLOBAL_SEED)
    torch.rand(17)  # and a different position in the stream
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    for line in iter(sys.stdin.readline, ""):
        name = line.strip()
        if not name:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = REGISTRY[name].build(0)
                initlab.init_model(model, SCHEME, seed=SEED)
            print(f"HASH {name} {state_hash(model)}", flush=True)
        except Exception as error:
            print(f"ERROR {name} {one_line(error)}", flush=True)
        model = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", help="comma-separated: hf,timm,torchvision,torch")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="registry names")
    parser.add_argument("--max-params", type=float, help="skip models with more parameters")
    parser.add_argument("--checks", default=",".join(CHECKS),
                        help=f"comma-separated, of {', '.join(CHECKS)}")  # fmt: skip
    parser.add_argument("--out", default="docs/guide/model-zoo-conformance.md")
    parser.add_argument("--hash-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hash_worker:
        _hash_worker()
        return 0
    checks = args.checks.split(",")
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(CHECKS), n=1)
        raise SystemExit(f"--checks: no check {unknown[0]!r}; valid: {', '.join(CHECKS)}"
                         + (f" (did you mean {near[0]!r}?)" if near else ""))  # fmt: skip
    chosen = _chosen(args)
    if not chosen:
        raise SystemExit("no model matches --family/--only/--max-params")
    selected = {c: CHECKS[c] for c in checks}
    torch.manual_seed(MAIN_GLOBAL_SEED)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    global _WORKER
    if "same_weights" in selected:
        _WORKER = HashWorker()
    start = time.perf_counter()
    rows = []
    try:
        for i, name in enumerate(chosen, 1):
            entry = REGISTRY[name]
            if _WORKER is not None:
                _WORKER.send(name)
            began = time.perf_counter()
            results = run_checks(entry, selected)
            _MEMO.clear()
            rows.append((entry, results))
            marks = " ".join(f"{c} {_mark(results[c][0])}" for c in checks)
            print(f"[{i}/{len(chosen)}] {name}: {marks} ({time.perf_counter() - began:.1f} s)",
                  flush=True)  # fmt: skip
    finally:
        if _WORKER is not None:
            _WORKER.close()
    seconds = time.perf_counter() - start
    command = "python3 benchmarks/zoo_conformance.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv)  # fmt: skip
    atomic_write(args.out, markdown(rows, checks, command.strip(), seconds))
    print(summary(rows, checks))
    print(f"wrote {args.out} ({len(rows)} models, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
