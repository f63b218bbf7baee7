"""Write docs/papers/*.md and copy the figures from a folder made by papers_full.sh.

Usage: python benchmarks/papers_docs.py RUN_DIR   (RUN_DIR/NAME/{figure.png,results.json})
Each page states the claim, the setting, the checks with the measured numbers of the full
setting, and where the setting differs from the paper; the index lists every paper. Papers not
in RUN_DIR keep their page and their row of the index (so `PAPERS="a b"` re-runs update only
those two).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "papers"


def _value(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cell(text: object) -> str:
    """A Markdown table cell: pipes (as in ``||x||``) escaped so they do not split it."""
    return str(text).replace("|", "\\|")


def _panel_tables(r: dict) -> str:
    """The numbers behind each line panel with at most 20 points per series (one column per
    series), so that a page states what its figure draws."""
    out = []
    for panel in r.get("panels", []):
        series = panel["series"]
        if panel["kind"] != "line" or not series or max(len(s["x"]) for s in series) > 20:
            continue
        xs = sorted({x for s in series for x in s["x"]})
        head = f"| {panel['xlabel']} | " + " | ".join(_cell(s["label"]) for s in series) + " |"
        rule = "|---" * (len(series) + 1) + "|"
        rows = []
        for x in xs:
            cells = [_value(float(s["y"][s["x"].index(x)])) if x in s["x"] else "" for s in series]
            rows.append(f"| {_value(x)} | " + " | ".join(cells) + " |")
        out.append(
            f"**{panel['title']}** (`{panel['ylabel']}`)\n\n{head}\n{rule}\n" + "\n".join(rows)
        )
    return "\n\n".join(out)


def page(r: dict) -> str:
    p = r["paper"]
    rows = "\n".join(
        f"| {_cell(c['name'])} | {_value(c['measured'])} | {_cell(c['expected'])} | "
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

{_panel_tables(r)}

## Where this differs from the paper

{r["notes"]}
"""


def _index_rows(results: list[dict]) -> str:
    """The index table: the existing rows, those of the papers in ``results`` replaced."""
    rows = {}
    index = DOCS / "index.md"
    if index.is_file():
        for line in index.read_text().splitlines():
            if line.startswith("| [") and "](" in line:
                rows[line.split("]", 1)[0][3:]] = line
    for r in results:
        rows[r["paper"]["name"]] = (
            f"| [{r['paper']['name']}]({r['paper']['name']}.md) | {r['paper']['citation']} | "
            f"{r['verdict']} | {r['seconds']:.0f} s |"
        )
    return "\n".join(rows[name] for name in sorted(rows))


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
    rows = _index_rows(results)
    (DOCS / "index.md").write_text(f"""# The classic papers, re-run

`initlab reproduce NAME` re-runs a paper's key result at CPU scale on generated data or
scikit-learn's digits, writes its figure (`figure.png`), `results.json` and an `index.html`
that states the claim, the setting and each check, and exits 1 when the claim is not
reproduced. `initlab reproduce --list` shows them; `initlab reproduce all --quick` runs every
quick setting (each under a minute on 2 cores; they run in the test suite) and prints a table.

The pages below show the **full** settings, run with `bash benchmarks/papers_full.sh OUT 9`
(one process per paper, one thread each): fixup2019, glorot2010, mishkin2016, pennington2017
and schoenholz2017 on a 16-core machine; he2015, saxe2014, skipinit2020 and xiao2018 (re-run
after their settings or checks were revised) on a busy 2-core one shared with other jobs, so
their times are longer.

| paper | citation | full setting | time |
|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main(sys.argv[1])
