"""The README's two set-up commands: ``.ci/run`` runs exactly the test command."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = _bash_blocks(readme.split("## Set-up", 1)[1].split("\n## ", 1)[0])
    assert len(blocks) == 2, "Set-up has one main-job command and one test command"
    main_job, tests = blocks
    assert "initlab compare" in main_job and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, f".ci/run must run the README's test command: {tests!r}"


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README has {len(lines)} lines; the reference lives in docs/"
