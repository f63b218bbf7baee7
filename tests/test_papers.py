"""Every reproduction's quick setting reproduces its paper's claim; the plumbing around it."""

from __future__ import annotations

import html
import json
import math

import pytest

from initlab.cli import main
from initlab.papers.base import check, names, reproduce
from initlab.papers.catalog import PAPERS
from initlab.report.papers import summary_table, write_reproduction


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_quick_setting_reproduces_the_claim(name):
    result = reproduce(name, quick=True)
    failed = [c for c in result.checks if not c.passed]
    assert result.verdict == "reproduced", f"{name}: failed checks {failed}"
    assert result.checks and result.panels
    data = result.to_dict()
    assert data["verdict"] == "reproduced" and data["paper"]["name"] == name
    json.dumps(data)  # plain data


def test_a_non_finite_measurement_never_passes():
    assert not check("x", math.nan, "< 1", True).passed
    assert not check("x", math.inf, "< 1", True).passed
    assert check("x", 0.5, "< 1", True).passed


def test_unknown_paper_names_the_closest():
    with pytest.raises(ValueError, match="did you mean 'he2015'"):
        reproduce("he2016")
    with pytest.raises(ValueError, match="Valid papers"):
        names(["glorot2010", "nope"])
    assert names("all") == sorted(PAPERS)


def test_write_reproduction_and_summary(tmp_path):
    result = reproduce("glorot2010", quick=True)
    paths = write_reproduction(result, tmp_path / "g")
    assert [p.rsplit("/", 1)[1] for p in paths] == ["figure.png", "results.json", "index.html"]
    assert (tmp_path / "g" / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "g" / "index.html").read_text()
    assert "Claim" in page and "reproduced" in page and html.escape(result.paper.claim) in page
    assert json.loads((tmp_path / "g" / "results.json").read_text())["verdict"] == "reproduced"
    table = summary_table([result])
    assert "glorot2010" in table and "5/5 checks" in table


def test_cli_reproduce(tmp_path, capsys):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in PAPERS)
    assert main(["reproduce", "glorot2010", "--quick", "--out", str(tmp_path / "o")]) == 0
    assert "verdict: reproduced" in capsys.readouterr().out
    assert (tmp_path / "o" / "index.html").is_file()
    assert main(["reproduce", "glorot2011"]) == 2
    assert "did you mean 'glorot2010'" in capsys.readouterr().err
    assert main(["reproduce"]) == 2
