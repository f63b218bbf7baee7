import base64
import re

import pytest

from initlab.bench.compare import compare
from initlab.report import plots, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_files_and_embedded_images(tmp_path):
    result = compare(["zeros", "he"], iterations=60, progress=False)
    written = write_report(result, str(tmp_path))
    names = sorted(p.rsplit("/", 1)[-1] for p in written)
    assert names == ["decision_boundaries.png", "gradient_norms.png", "loss.png", "report.html"]
    for name in names[:-1]:
        assert (tmp_path / name).read_bytes().startswith(PNG)
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert "<td>he</td>" in page and "http" not in page  # offline: nothing fetched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_no_decision_boundary_for_high_dimensional_data(tmp_path):
    result = compare(["he"], "digits", [64, 16, 10], iterations=20, lr=0.1, progress=False)
    names = sorted(p.rsplit("/", 1)[-1] for p in write_report(result, str(tmp_path)))
    assert "decision_boundaries.png" not in names and "loss.png" in names


def test_plots_handle_a_diverged_run():
    result = compare(["random:scale=3"], activation="linear", output="linear", lr=0.5,
                     iterations=60, init_style="model", seeds=[0], progress=False)  # fmt: skip
    assert result.runs[0].status == "diverged"
    assert plots.loss_curves(result.runs).startswith(PNG)
    assert plots.gradient_norms(result.runs).startswith(PNG)


def _png_height(png: bytes) -> int:
    return int.from_bytes(png[20:24], "big")  # IHDR: width at 16, height at 20


def test_report_plots_monitor_data_with_a_caption(tmp_path):
    result = compare(["zeros", "he"], iterations=40, monitor_every=10, seeds=[0, 1],
                     progress=False)  # fmt: skip
    names = sorted(p.rsplit("/", 1)[-1] for p in write_report(result, str(tmp_path)))
    assert names == ["decision_boundaries.png", "gradient_norms.png", "loss.png", "monitor.png",
                     "report.html"]  # fmt: skip
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    assert base64.b64decode(images[-1]) == (tmp_path / "monitor.png").read_bytes()
    assert "every 10 iterations" in page and "collapse toward 0" in page
    # one row of panels per scheme
    one = plots.monitor_curves(result.runs[2:], result.monitors)
    two = (tmp_path / "monitor.png").read_bytes()
    assert one.startswith(PNG) and _png_height(two) > 1.6 * _png_height(one)


def test_monitor_plot_handles_a_diverged_run_and_refuses_no_data():
    result = compare(["random:scale=3"], activation="linear", output="linear", lr=0.5,
                     iterations=60, init_style="model", seeds=[0], monitor_every=2,
                     progress=False)  # fmt: skip
    assert result.runs[0].status == "diverged"
    assert plots.monitor_curves(result.runs, result.monitors).startswith(PNG)
    with pytest.raises(ValueError, match="no monitor data"):
        plots.monitor_curves(result.runs, {})


def test_write_report_creates_its_folder(tmp_path):
    result = compare(["he"], iterations=20, progress=False)
    out = tmp_path / "new" / "folder"
    written = write_report(result, str(out))
    assert (out / "report.html").exists() and len(written) >= 3
