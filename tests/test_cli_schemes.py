"""``initlab schemes``: every canonical scheme with its aliases and formula."""

from __future__ import annotations

import json
import subprocess
import sys

from initlab.cli import main
from initlab.initializers import registry


def test_table_lists_every_scheme_with_formula_and_aliases(capsys):
    assert main(["schemes"]) == 0
    out = capsys.readouterr().out
    rows = registry.describe()
    for row in rows:
        assert row["name"] in out and row["formula"] in out
    for alias in registry.aliases():
        assert alias in out, alias
    assert "truncated at 2 std" in out  # the normal-vs-truncated note


def test_json(capsys):
    assert main(["schemes", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data] == registry.names()
    by_name = {r["name"]: r for r in data}
    assert set(by_name["he_normal"]["aliases"].split(", ")) == set(registry.aliases("he_normal"))
    assert by_name["xavier_normal"]["formula"] == "Var(w) = gain^2 * 2 / (fan_in + fan_out)"
    assert {"name", "draws", "aliases", "parameters", "formula"} == set(data[0])
    assert by_name["xavier_truncated"]["draws"] == "truncated at 2 std, rescaled"
    assert by_name["he_normal"]["draws"] == "normal (untruncated)"
    assert by_name["zeros"]["parameters"] == ""  # the name fixes value=0


def test_console_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "initlab.cli", "schemes", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == len(registry.names())


def test_usage_error_is_one_line_exit_2(capsys):
    assert main(["schemes", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --bogus" in err
