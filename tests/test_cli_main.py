"""The ``initlab`` entry point: help, unknown commands and a closed stdout."""

import subprocess
import sys

from initlab.cli import main


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_one_line_and_exit_2(capsys):
    try:
        main(["frobnicate"])
    except SystemExit as stop:
        assert stop.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice" in err


def test_closed_pipe_is_not_a_traceback():
    # `initlab schemes | head -1`: the reader closes the pipe after one line.
    proc = subprocess.run(
        f"{sys.executable} -m initlab.cli schemes | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.startswith("scheme")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_help_imports_no_torch_scipy_or_matplotlib():
    """``initlab --help`` and every ``initlab CMD --help`` parse without the heavy libraries."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from initlab.cli import COMMANDS, build_parser\n"
        "build_parser()\n"
        "heavy = [m for m in ('torch', 'scipy', 'matplotlib', 'sklearn', 'rich', 'transformers')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
