"""Write docs/papers/*.md and copy the figures from a folder made by papers_full.sh.

Usage: python benchmarks/papers_docs.py RUN_DIR   (RUN_DIR/NAME/{figure.png,results.json})
Each page states the claim, the setting, the checks with the measured numbers of the full
setting, and where the setting differs from the paper; the index lists every paper.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "papers"


def _value(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def page(r: dict) -> str:
    p = r["paper"]
    rows = "\n".join(
        f"| {c['name']} | {_value(c['measured'])} | {c['expected']} | "
        f"{'pass' if c['passed'] else 'FAIL'} |"
        for c in r["checks"]
    )
    setting = "\n".join(f"- {k}: {v}" for k, v in r["setting"].items())
    return f"""# {p["name"]}: {p["title"]}

*{p["citation"]}* · `initlab reproduce {p["name"]}` (full setting, {r["seconds"]:.0f} s on one
CPU core) · `--quick` runs in the test suite.

**Claim.** {p["claim"]}

![{p["name"]} figure](img/{p["name"]}.png)

## Setting

{setting}

## Measured (full setting): {r["verdict"]}

| check | measured | expected | result |
|---|---|---|---|
{rows}

## Where this differs from the paper

{r["notes"]}
"""


def main(run_dir: str) -> None:
    results = []
    for folder in sorted(pathlib.Path(run_dir).iterdir()):
        if not (folder / "results.json").is_file():
            continue
        r = json.loads((folder / "results.json").read_text())
        results.append(r)
        (DOCS / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "figure.png", DOCS / "img" / f"{r['paper']['name']}.png")
        (DOCS / f"{r['paper']['name']}.md").write_text(page(r))
    rows = "\n".join(
        f"| [{r['paper']['name']}]({r['paper']['name']}.md) | {r['paper']['citation']} | "
        f"{r['verdict']} | {r['seconds']:.0f} s |"
        for r in results
    )
    (DOCS / "index.md").write_text(f"""# The classic papers, re-run

`initlab reproduce NAME` re-runs a paper's key result at CPU scale on generated data or
scikit-learn's digits, writes its figure (`figure.png`), `results.json` and an `index.html`
that states the claim, the setting and each check, and exits 1 when the claim is not
reproduced. `initlab reproduce --list` shows them; `initlab reproduce all --quick` runs every
quick setting (each under a minute on 2 cores; they run in the test suite) and prints a table.

The pages below show the **full** settings, run with `bash benchmarks/papers_full.sh OUT 9`
(one process per paper, one thread each): six on a 16-core machine, he2015, saxe2014 and
xiao2018 (re-run after their checks were revised) on a busy 2-core one, so their times are
longer.

| paper | citation | full setting | time |
|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main(sys.argv[1])
