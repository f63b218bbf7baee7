"""Every ``initlab ...`` example in the README and docs/ parses with today's flags, so a renamed
flag cannot leave a stale example behind."""

from __future__ import annotations

import pathlib
import re
import shlex

import pytest

from initlab.cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _examples() -> list[tuple[str, str]]:
    """``(page, command line)`` of every example in a fenced block; synopses with ``[...]``
    placeholders are skipped."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S):
            text = block.replace("\\\n", " ")
            for line in text.splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("initlab ") and not re.search(r"\[|\.\.\.|\|", line):
                    found.append((str(page.relative_to(ROOT)), line))
    return found


EXAMPLES = _examples()


def test_the_pages_have_examples():
    assert len(EXAMPLES) >= 40


@pytest.mark.parametrize(("page", "line"), EXAMPLES, ids=[f"{p}:{x[8:40]}" for p, x in EXAMPLES])
def test_example_parses(page, line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(line, comments=True)[1:]
    for arg in argv:  # data files the example names exist in its own folder
        if arg.endswith((".csv", ".npz")):
            (tmp_path / arg).write_text("")
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        raise AssertionError(f"{page}: {line!r}: {capsys.readouterr().err.strip()}") from None
