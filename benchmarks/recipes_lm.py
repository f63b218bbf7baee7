"""What the init recipe does to a small causal LM: the same model, data and optimizer under
four recipes (gpt2, olmo2, olmocore_llama, pythia), loss curves in a PNG and a table.

Model: Hugging Face GPT-2 from a config (4 layers, width 128, 4 heads; nothing downloaded).
Data: a generated copy task: 16 random tokens, a separator, the same 16 tokens again; the loss
is next-token cross entropy on the copied half, so a model that learns to attend back reaches
~0 and one that does not stays near log(vocab) = 4.16. AdamW (lr 1e-3, no warmup), batch 16,
200 steps, seeds fixed: every recipe sees the same batches.

    python benchmarks/recipes_lm.py                  # writes docs/assets/recipes_lm.png
    python benchmarks/recipes_lm.py --steps 60       # quick look
    python benchmarks/recipes_lm.py --replot         # redraw the PNG from the saved losses
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

import initlab

RECIPES = ("gpt2", "olmo2", "olmocore_llama", "pythia")
VOCAB, HALF = 64, 16


def batch(generator: torch.Generator, size: int) -> torch.Tensor:
    tokens = torch.randint(1, VOCAB, (size, HALF), generator=generator)
    sep = torch.zeros(size, 1, dtype=torch.long)
    return torch.cat([tokens, sep, tokens], dim=1)


def build(layers: int, width: int):
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    config = GPT2Config(n_layer=layers, n_embd=width, n_head=4, vocab_size=VOCAB,
                        n_positions=2 * HALF + 1, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)  # fmt: skip
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return GPT2LMHeadModel(config)


def copy_loss(model, ids: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids).logits[:, HALF:-1]  # predictions of the copied half
    return F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, HALF + 1 :].reshape(-1))


def train(recipe: str, steps: int, layers: int, width: int) -> dict:
    model = build(layers, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchtitan-style truncation warnings, if any
        initlab.init_model(model, recipe=recipe, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    data = torch.Generator().manual_seed(1)
    held_out = batch(torch.Generator().manual_seed(2), 256)
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        loss = copy_loss(model, batch(data, 16))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        final = float(copy_loss(model.eval(), held_out))
    return {"recipe": recipe, "losses": losses, "held_out": final,
            "seconds": time.perf_counter() - start}  # fmt: skip


def plot(results: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(r["losses"], label=r["recipe"], linewidth=1.2)
    ax.axhline(math.log(VOCAB), color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_yscale("log")
    ax.set_xlabel("AdamW step")
    ax.set_ylabel("copy-task loss (train batch, log scale)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--out", default="docs/assets/recipes_lm.png")
    parser.add_argument("--replot", action="store_true", help="redraw the PNG from its .json")
    args = parser.parse_args()
    if args.replot:
        out = Path(args.out)
        results = json.loads(out.with_suffix(".json").read_text())
        plot(
            results, out, f"GPT-2 {args.layers} layers x {args.width}: only the init recipe differs"
        )
        print(f"wrote {out}")
        return
    torch.set_num_threads(1)  # the machine is shared: one thread is the fastest here
    results = [train(r, args.steps, args.layers, args.width) for r in RECIPES]
    print(f"copy task, GPT-2 {args.layers}x{args.width}, {args.steps} AdamW steps; "
          f"chance = log({VOCAB}) = {math.log(VOCAB):.2f}")  # fmt: skip
    print(f"{'recipe':16} {'loss@50':>8} {'loss@150':>9} {'last 20':>8} {'held-out':>9} {'s':>6}")
    for r in results:
        tail = sum(r["losses"][-20:]) / 20
        at = [r["losses"][min(k, len(r["losses"]) - 1)] for k in (49, 149)]
        print(f"{r['recipe']:16} {at[0]:8.3f} {at[1]:9.3f} {tail:8.3f} {r['held_out']:9.3f} "
              f"{r['seconds']:6.1f}")  # fmt: skip
    out = Path(args.out)
    plot(results, out, f"GPT-2 {args.layers} layers x {args.width}: only the init recipe differs")
    out.with_suffix(".json").write_text(json.dumps(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
