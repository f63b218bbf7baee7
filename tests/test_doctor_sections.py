"""SPP, Jacobian spectrum and coordinate check as sections of the doctor's report (issue 15):
present with the right verdicts when asked for, absent (and not computed) by default, in the
text, the JSON and the CLI's --json/--plot/--html."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

import initlab
import initlab.doctor.spp as spp_module
from initlab.cli import main
from zoo import ZOO


def _x(batch: int = 16, width: int = 32) -> torch.Tensor:
    return torch.randn(batch, width, generator=torch.Generator().manual_seed(0))


def _tanh_gaussian(depth: int = 16, width: int = 32) -> nn.Module:
    """Deep tanh net with Gaussian weights of std 1.3/sqrt(width): chaotic, not isometric."""
    with torch.random.fork_rng(devices=[]):
        net = nn.Sequential(
            *[m for _ in range(depth) for m in (nn.Linear(width, width), nn.Tanh())]
        )
    initlab.init_model(net, f"normal:std={1.3 / width**0.5}", seed=0)
    return net


def _orthogonal_linear(depth: int = 12, width: int = 32) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        net = nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(depth)])
    initlab.init_model(net, "orthogonal", seed=0)
    return net


def test_default_diagnosis_has_no_sections_and_runs_no_extra_pass(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("spp must not run without sections=")

    monkeypatch.setattr(spp_module, "spp", refuse)
    d = initlab.diagnose(_orthogonal_linear(), _x())
    assert d.sections == {} and "sections" not in d.to_dict()


def test_healthy_resnet_has_a_healthy_spp_section():
    z = ZOO["resnet_basic"](seed=0)
    d = initlab.diagnose(z.model, z.example, sections=["spp"])
    assert d.healthy
    section = d.sections["spp"]
    assert section.status == "ok" and section.verdict.startswith("healthy")
    assert len(section.result.blocks) == 8
    assert "signal propagation (residual blocks" in str(d) and "[ok]" in str(d)


def test_spp_section_on_a_net_without_residual_blocks_is_not_applicable():
    d = initlab.diagnose(_orthogonal_linear(4), _x(), sections="spp")
    assert d.sections["spp"].status == "n/a" and d.sections["spp"].result is None


def test_deep_tanh_gaussian_mlp_is_not_isometric():
    d = initlab.diagnose(_tanh_gaussian(), _x(), sections=["jacobian"])
    section = d.sections["jacobian"]
    assert section.status == "unhealthy" and section.verdict.startswith("not isometric")
    spectrum = section.result
    assert spectrum.spread > 3 and spectrum.s_max > spectrum.s_median
    assert any("orthogonal" in line for line in section.advice)  # what to change


def test_orthogonal_linear_net_is_isometric():
    d = initlab.diagnose(_orthogonal_linear(), _x(), sections=["jacobian"])
    section = d.sections["jacobian"]
    assert section.status == "ok" and section.verdict.startswith("isometric")
    assert section.result.s_max == pytest.approx(1.0, rel=1e-5)
    assert section.result.s_median == pytest.approx(1.0, rel=1e-5)


def _gaussian_mlp(width: int) -> nn.Module:
    """N(0, 1) weights whatever the width: the hidden layers grow like sqrt(width) at init."""
    net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                        nn.Linear(width, 4))  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 1.0)
    return net


def test_factory_adds_a_coord_section_that_names_the_growing_layers():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _gaussian_mlp(32)
    d = initlab.diagnose(model, _x(16, 8), factory=_gaussian_mlp, widths=[16, 32, 64, 128])
    section = d.sections["coord"]
    assert section.status == "unhealthy" and section.verdict.startswith("not width-independent")
    grows = [r.module for r in section.result.rows if r.verdict == "grows"]
    assert "2" in grows  # the hidden linear layer
    assert any("1/sqrt(fan_in)" in line for line in section.advice)
    data = json.loads(json.dumps(d.to_dict()))
    assert data["sections"]["coord"]["status"] == "unhealthy"
    assert data["sections"]["coord"]["result"]["widths"] == [16, 32, 64, 128]


def test_bad_section_names_and_a_missing_factory_are_clear_errors():
    net, x = _orthogonal_linear(2), _x()
    with pytest.raises(ValueError, match="spp"):
        initlab.diagnose(net, x, sections=["sp"])
    with pytest.raises(ValueError, match="factory"):
        initlab.diagnose(net, x, sections=["coord"])


MODEL_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

        def forward(self, x):
            return x + self.fc2(torch.relu(self.fc1(x)))

    def resmlp(width=16):
        return nn.Sequential(nn.Linear(8, width), Block(width), Block(width), nn.Linear(width, 2))

    def plain():
        return nn.Sequential(nn.Linear(8, 8))
    """
)


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_deep_json_plot_and_html(capsys, tmp_path):
    path = tmp_path / "net.py"
    path.write_text(MODEL_FILE)
    plot, page = tmp_path / "signal.png", tmp_path / "report.html"
    code, out, err = run(
        capsys, "diagnose", "--model", f"{path}:resmlp", "--input-shape", "8", "--batch", "16",
        "--deep", "--widths", "8,16,32", "--json", "--plot", str(plot), "--html", str(page),
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert set(data["sections"]) == {"spp", "jacobian", "coord"}
    assert len(data["sections"]["spp"]["result"]["blocks"]) == 2
    for name in ("spp", "jacobian", "coord"):
        assert data["sections"][name]["status"] in ("ok", "warning", "unhealthy")
        written = tmp_path / f"signal-{name}.png"
        assert written.read_bytes()[:4] == b"\x89PNG" and f"wrote {written}" in err
    text = page.read_text()
    assert "Jacobian spectrum (dynamical isometry)" in text and text.count("data:image/png") == 4


def test_cli_sections_errors_are_one_line(capsys, tmp_path):
    path = tmp_path / "net.py"
    path.write_text(MODEL_FILE)
    base = ["diagnose", "--model", f"{path}:plain", "--input-shape", "8", "--batch", "8"]
    code, out, err = run(capsys, *base, "--sections", "jacobain")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "jacobian" in err
    code, _, err = run(capsys, *base, "--sections", "coord")
    assert code == 2 and "width argument" in err


def test_a_width_factory_that_exits_is_one_line(capsys, tmp_path):
    # FACTORY(width=...) went through its own call, which let sys.exit end the CLI silently;
    # it now shares the model file's call (seeding, sys.exit and type checks).
    path = tmp_path / "net.py"
    path.write_text("import sys\n\ndef make(width):\n    sys.exit(4)\n")
    code, out, err = run(capsys, "diagnose", "--model", f"{path}:make", "--input-shape", "8")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "make(width=32)" in err and "exited (sys.exit) with code 4" in err


def test_jacobian_section_is_not_applicable_to_token_ids():
    model = _seeded_embedding()
    ids = torch.randint(0, 10, (4, 6), generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(model, ids, sections=["jacobian"])
    section = d.sections["jacobian"]
    assert section.status == "n/a" and "embeddings" in section.verdict
    assert d.to_dict()["sections"]["jacobian"]["result"] is None


def _seeded_embedding() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 3))
