"""Nothing lost, nothing silently wrong (issue 12, the bench's files and inputs).

Run identity, folder locks, data fingerprints, --force, atomic writes with the umask, damaged
or foreign files, and input validation of train/compare. Kept small: a few iterations each.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

import initlab
from initlab._core import files, locks
from initlab._core.validation import check_seed
from initlab.bench import store
from initlab.bench.compare import Comparison, compare
from initlab.cli import main

QUICK = {"iterations": 10, "progress": False}


def _one_line_error(capsys, argv) -> str:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------- 3: run identity
def test_models_are_named_by_run_identity_and_resume_keeps_each_runs_weights(tmp_path):
    out = tmp_path / "cmp"
    first = compare(["he", "zeros"], seeds=[0, 1], out=out, **QUICK)
    names = sorted(os.listdir(out / "models"))
    assert names == sorted(f"run-{store.run_id(s, d)}.pt" for s in ("he", "zeros") for d in (0, 1))
    # a seed added in front changes every position; each run must keep its own weights
    again = compare(["he", "zeros"], seeds=[7, 0, 1], out=out, resume=True, **QUICK)
    loaded = Comparison.load(out)
    for run in first.runs:
        twin = next(r for r in loaded.runs if (r.scheme, r.seed) == (run.scheme, run.seed))
        for a, b in zip(run.model.parameters(), twin.model.parameters(), strict=True):
            assert torch.equal(a, b)
    assert [(r.scheme, r.seed) for r in again.runs][:3] == [("he", 7), ("he", 0), ("he", 1)]


def test_resume_with_fewer_or_other_runs_keeps_the_saved_ones(tmp_path):
    """Issue 26: a resume with other schemes or seeds erased the saved runs not asked for
    from results.json and history.csv, leaving their model files without an entry."""
    out = tmp_path / "cmp"
    first = compare(["he", "xavier_normal", "lecun_normal"], seeds=[1, 2], out=out, **QUICK)
    again = compare(["he"], seeds=[1, 2, 3], out=out, resume=True, **QUICK)
    expected = [("he", 1), ("he", 2), ("he", 3), ("xavier_normal", 1), ("xavier_normal", 2),
                ("lecun_normal", 1), ("lecun_normal", 2)]  # fmt: skip
    assert [(r.scheme, r.seed) for r in again.runs] == expected  # asked for first, then kept
    saved = json.loads((out / "results.json").read_text())
    assert [(r["scheme"], r["seed"]) for r in saved["runs"]] == expected
    assert saved["config"]["schemes"] == ["he", "xavier_normal", "lecun_normal"]
    assert saved["config"]["seeds"] == [1, 2, 3]
    history = (out / "history.csv").read_text().splitlines()[1:]
    assert {tuple(line.split(",")[:2]) for line in history} == {(s, str(d)) for s, d in expected}
    models = {f"run-{r['run_id']}.pt" for r in saved["runs"] if "model_sha256" in r}
    assert models == set(os.listdir(out / "models")) and len(models) == 7
    loaded = Comparison.load(out)
    for run in first.runs:  # the kept runs keep their weights and numbers
        twin = next(r for r in loaded.runs if (r.scheme, r.seed) == (run.scheme, run.seed))
        assert twin.final_loss == run.final_loss
        for a, b in zip(run.model.parameters(), twin.model.parameters(), strict=True):
            assert torch.equal(a, b)


def test_a_results_json_with_a_run_twice_is_refused(tmp_path):
    out = tmp_path / "cmp"
    compare(["he"], seeds=[1, 2], out=out, **QUICK)
    data = json.loads((out / "results.json").read_text())
    data["runs"].append(data["runs"][0])
    (out / "results.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"run 2 repeats scheme 'he' seed 1 \(run 0\)"):
        compare(["he"], seeds=[1, 2], out=out, resume=True, **QUICK)


def test_a_model_file_newer_than_results_json_is_not_attached(tmp_path):
    """Interrupted between writing a model and results.json: the pair is safe in either order."""
    out = tmp_path / "cmp"
    first = compare(["he"], seeds=[0, 1], out=out, **QUICK)
    # a later save wrote seed 0's file (other weights), then died before results.json
    wrong = initlab.mlp([2, 10, 5, 1]).double().state_dict()
    torch.save(wrong, out / "models" / f"run-{store.run_id('he', 0)}.pt")
    assert Comparison.load(out).runs[0].model is None  # hash mismatch: not seed 0's weights
    resumed = compare(["he"], seeds=[0, 1], out=out, resume=True, **QUICK)
    for a, b in zip(first.runs[0].model.parameters(), resumed.runs[0].model.parameters(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)  # trained again, same seed: the same weights


# ---------------------------------------------------------------- 4: lock
# A child process that takes the folder lock, says so, and holds it until its stdin closes.
_HOLDER = """
import os, sys, time
from initlab._core import locks
folder, go = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while go != "-" and not os.path.exists(go):
    time.sleep(0.001)
try:
    with locks.folder_lock(folder):
        print("won", flush=True)
        sys.stdin.read()
except FileExistsError:
    print("refused", flush=True)
"""


def _holder(folder, go="-"):
    src = os.path.dirname(os.path.dirname(initlab.__file__))
    env = os.environ | {"PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), str(go)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout.readline() == "ready\n"
    return child


def _dead_pid():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_a_locked_folder_is_refused_whatever_its_lock_file_says(tmp_path):
    """The lock is the flock, not the file: a record naming a dead process (what a process
    taking over a "stale" lock saw while another took it) does not free a held folder, and
    compare and sweep share the one lock. When the holder is killed the kernel frees it."""
    from initlab.bench.sweep.run import sweep

    out = tmp_path / "busy"
    holder = _holder(out)
    try:
        assert holder.stdout.readline() == "won\n"
        assert locks.read_lock(out)["pid"] == holder.pid
        (out / locks.LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host":
                                                       os.uname().nodename}))  # fmt: skip
        with pytest.raises(FileExistsError, match="in use by another initlab process"):
            compare(["he"], out=out, **QUICK)
        with pytest.raises(FileExistsError, match="in use by another initlab process"):
            sweep({"iterations": 2}, out=out, progress=False)
        with pytest.raises(FileExistsError, match="in use by another initlab process"):
            sweep({"iterations": 2}, out=out, force=True, progress=False)
        assert sorted(os.listdir(out)) == [locks.LOCK_NAME]  # nothing written
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays
        holder.communicate()
    assert (out / locks.LOCK_NAME).exists()
    compare(["he"], out=out, **QUICK)  # free at once: nothing stale to detect or take over
    assert (out / "results.json").exists() and not (out / locks.LOCK_NAME).exists()


def test_comparison_save_takes_the_folder_lock(tmp_path):
    result = compare(["he"], **QUICK)
    out = tmp_path / "saved"
    holder = _holder(out)
    try:
        assert holder.stdout.readline() == "won\n"
        with pytest.raises(FileExistsError, match="in use by another initlab process"):
            result.save(out)
        assert sorted(os.listdir(out)) == [locks.LOCK_NAME]
    finally:
        holder.communicate()
    result.save(out)
    assert Comparison.load(out).runs[0].final_loss == result.runs[0].final_loss


def test_racing_processes_never_hold_a_lock_together(tmp_path):
    """Six processes try at once to lock a folder whose lock file a killed process left:
    exactly one gets it (the winner holds it until every other one has been answered)."""
    out = tmp_path / "race"
    out.mkdir()
    for trial in range(3):
        (out / locks.LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host":
                                                       os.uname().nodename}))  # fmt: skip
        go = tmp_path / f"go-{trial}"
        children = [_holder(out, go) for _ in range(6)]
        go.touch()
        answers = [c.stdout.readline().strip() for c in children]
        for c in children:
            c.communicate()  # closes its stdin: the winner lets go
        assert sorted(answers) == ["refused"] * 5 + ["won"], answers


def test_the_cli_holds_the_lock_over_the_sweep_and_its_report(tmp_path, capsys, monkeypatch):
    from initlab.report import sweep as report

    seen = []
    real = report.write_sweep_report

    def spy(result, out, heatmap=None):
        seen.append(locks.read_lock(out))
        return real(result, out, heatmap=heatmap)

    monkeypatch.setattr(report, "write_sweep_report", spy)
    out = tmp_path / "s"
    assert main(["sweep", "--scale", "1,2", "--iterations", "2", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    assert seen and seen[0]["pid"] == os.getpid()
    assert not (out / locks.LOCK_NAME).exists() and not (out / ".lock").exists()


def test_lock_is_released_on_an_error_and_reentrant_in_one_process(tmp_path):
    with locks.folder_lock(tmp_path) as folder:
        assert locks.read_lock(folder)["pid"] == os.getpid()
        with locks.folder_lock(tmp_path):  # the CLI holds it over compare and the report
            pass
        assert (tmp_path / locks.LOCK_NAME).exists()
    assert not (tmp_path / locks.LOCK_NAME).exists()
    with pytest.raises(ValueError), locks.folder_lock(tmp_path):
        raise ValueError("boom")
    assert not (tmp_path / locks.LOCK_NAME).exists()


# ---------------------------------------------------------------- 5: fingerprint
def test_resume_refuses_other_data_with_the_same_name(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.randn(40, 2)
    for folder, flip in (("a", False), ("b", True)):
        (tmp_path / folder).mkdir()
        y = (x[:, 0] > 0).astype(int)
        np.savez(tmp_path / folder / "data.npz", X=x, y=1 - y if flip else y)
    out = tmp_path / "cmp"
    first = compare(["he"], str(tmp_path / "a" / "data.npz"), out=out, **QUICK)
    saved = json.loads((out / "results.json").read_text())["config"]["data_fingerprint"]
    assert saved["sha256"] == first.config["data_fingerprint"]["sha256"]
    assert saved["source"]["loader"] == "npz" and len(saved["source"]["file_sha256"]) == 64
    with pytest.raises(ValueError, match=r"the data differs .*file content \(SHA-256\)"):
        compare(["he"], str(tmp_path / "b" / "data.npz"), out=out, resume=True, **QUICK)


def test_resume_refuses_data_shaped_by_other_options(tmp_path):
    out = tmp_path / "cmp"
    compare(["he"], initlab.datasets.circles(noise=0.05), out=out, **QUICK)
    with pytest.raises(ValueError, match=r"noise 0.05 -> 0.1"):
        compare(["he"], initlab.datasets.circles(noise=0.1), out=out, resume=True, **QUICK)


# ---------------------------------------------------------------- 6, 7, 8: inputs
def test_nan_labels_and_nan_test_features_are_rejected(tmp_path):
    x = np.random.RandomState(0).randn(20, 2)
    y = np.arange(20) % 2 * 1.0
    y[3] = np.nan
    np.savez(tmp_path / "nan_y.npz", X=x, y=y)
    with pytest.raises(ValueError, match="non-finite label nan at row 3"):
        initlab.datasets.load(str(tmp_path / "nan_y.npz"))
    xt = x.copy()
    xt[5, 1] = np.nan
    np.savez(tmp_path / "nan_xt.npz", X=x, y=np.arange(20) % 2, X_test=xt, y_test=np.arange(20) % 2)
    with pytest.raises(ValueError, match="X_test at row 5, column 1"):
        initlab.datasets.load(str(tmp_path / "nan_xt.npz"))
    with pytest.raises(ValueError, match="x_test holds NaN"):
        compare(["he"], (x, np.arange(20) % 2, xt, np.arange(20) % 2), **QUICK)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0, 1, -1, 1] * 5), r"class numbers 0, 1, \.\.\.; got -1 at row 2"),
        (np.array([0.0, 1.0, 0.9, 1.0] * 5), r"whole class numbers .* got 0.9 at row 2"),
        (np.array([0, 1, np.nan, 1] * 5), "NaN or Inf labels"),
    ],
)
def test_train_rejects_labels_that_are_not_classes(y, message):
    x = np.random.RandomState(0).randn(20, 2)
    with pytest.raises(ValueError, match=message):
        initlab.train(initlab.mlp([2, 3, 1]), (x, y), **QUICK)


def test_train_rejects_zero_rows_and_the_wrong_feature_count():
    with pytest.raises(ValueError, match="no training rows"):
        initlab.train(initlab.mlp([2, 3, 1]), (np.zeros((0, 2)), np.zeros(0)), **QUICK)
    with pytest.raises(
        ValueError, match="the data has 2 features, which the model does not accept"
    ):
        initlab.train(initlab.mlp([3, 4, 1]), "circles", **QUICK)


def test_complex_features_are_an_error(tmp_path):
    x = np.random.RandomState(0).randn(20, 2) + 1j
    np.savez(tmp_path / "c.npz", X=x, y=np.arange(20) % 2)
    with pytest.raises(ValueError, match="complex numbers"):
        initlab.datasets.load(str(tmp_path / "c.npz"))
    with pytest.raises(ValueError, match="complex numbers"):
        compare(["he"], (x, np.arange(20) % 2), **QUICK)


@pytest.mark.parametrize("dims", ["2,,1", "2,10,", ",2,1"])
def test_empty_dims_entry_is_an_error(capsys, dims):
    err = _one_line_error(capsys, ["compare", "--dims", dims, "--iterations", "2"])
    assert "--dims" in err and "none empty" in err


def test_compare_names_a_bad_layer_dims_or_activation():
    with pytest.raises(TypeError, match="layer_dims must be a list of layer sizes"):
        compare(["he"], layer_dims=5, **QUICK)
    with pytest.raises(TypeError, match="activation must be a name"):
        compare(["he"], activation=5, **QUICK)


# ---------------------------------------------------------------- 9: --force
def test_force_replaces_the_previous_experiments_files(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--schemes", "he", "zeros", "--iterations", "5", "--out", str(out),
                 "--monitor-every", "5", "--no-progress"]) == 0  # fmt: skip
    (out / "notes.txt").write_text("mine")
    before = set(os.listdir(out / "models"))
    assert main(["compare", "--schemes", "xavier", "--iterations", "5", "--out", str(out),
                 "--force", "--no-progress", "--no-report"]) == 0  # fmt: skip
    capsys.readouterr()
    left = set(os.listdir(out))
    assert {"monitor.json", "decision_boundaries.png", "report.html", "loss.png"}.isdisjoint(left)
    assert "notes.txt" in left  # not initlab's: kept
    assert set(os.listdir(out / "models")) == {f"run-{store.run_id('xavier', 3)}.pt"}
    assert not before & set(os.listdir(out / "models"))


# ---------------------------------------------------------------- 10: atomic writes
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_follows_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        files.atomic_write(tmp_path / "f.txt", "x")
    finally:
        os.umask(previous)
    assert (os.stat(tmp_path / "f.txt").st_mode & 0o777) == 0o666 & ~umask


def test_atomic_write_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    files.atomic_write(tmp_path / "f.txt", "x")
    assert len(synced) == 2 and ".tmp-" in synced[0]
    assert synced[1] == os.path.realpath(tmp_path)


def test_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    files.atomic_write(target, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"could not write .*results.json: no space left on device"):
        files.atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_folder_is_not_a_file_name(tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        files.atomic_write(tmp_path, "x")
    with pytest.raises(IsADirectoryError):
        files.atomic_write("", "x")


def _device(path):
    """A character device node like /dev/null at ``path`` (needs root), else skip."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "fifo", "device", "socket"])
def test_the_writer_replaces_only_regular_files(tmp_path, kind):
    """Issue 26: every writer replaced a symlink, FIFO or device node by a regular file (as
    root, diagnose --plot /dev/null replaced /dev/null)."""
    outside = tmp_path / "outside.txt"
    outside.write_text("theirs")
    path = tmp_path / "link.png"
    if kind == "symlink":
        path.symlink_to(outside)
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        _device(path)
    else:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    before = os.lstat(path)
    with pytest.raises(FileExistsError, match=rf"refusing to write {path}: it is a"):
        files.atomic_write(path, b"new")
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert outside.read_text() == "theirs" and not list(tmp_path.glob(".tmp-*"))


def test_commands_refuse_a_link_or_device_before_any_work(tmp_path, capsys):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"theirs")
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "loss.png").symlink_to(outside)
    err = _one_line_error(capsys, ["compare", "--schemes", "he", "--iterations", "5", "--out",
                                   str(out), "--resume", "--no-progress"])  # fmt: skip
    assert f"refusing to write {out / 'loss.png'}: it is a symbolic link" in err
    assert sorted(os.listdir(out)) == ["loss.png"] and outside.read_bytes() == b"theirs"
    _device(tmp_path / "null")
    err = _one_line_error(capsys, ["diagnose", "--plot", str(tmp_path / "null")])
    assert "--plot: refusing to write" in err and "it is a character device" in err
    assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)


# ---------------------------------------------------------------- 11: empty values
@pytest.mark.parametrize(
    "argv",
    [["--out", ""], ["--data", ""], ["--schemes", ""], ["--label", ""], ["--activation", ""]],
)
def test_empty_option_values_are_errors(capsys, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _one_line_error(capsys, ["compare", *argv, "--iterations", "2"])
    assert "empty" in err or "expected" in err
    assert not (tmp_path / "runs").exists()


def test_sweep_refuses_an_empty_out_too(capsys, tmp_path, monkeypatch):
    # sweep read `args.out or default`: --out '' silently wrote under runs/.
    monkeypatch.chdir(tmp_path)
    err = _one_line_error(capsys, ["sweep", "--out", "", "--iterations", "2", "--seeds", "0"])
    assert "--out must not be empty" in err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- data files: one line
def _write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def bad_files(tmp_path):
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros((3, 2)))
    good = tmp_path / "good.npz"
    np.savez(good, X=np.zeros((10, 2)), y=np.arange(10) % 2)
    import zipfile

    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as archive:
        archive.writestr("X.txt", "hello")
    return {
        "huge.csv": (_write(tmp_path / "huge.csv", b"a,b\n" + b"1," + b"x" * 200_000 + b"\n"),
                     "line 2 is not valid CSV"),
        "latin1.csv": (_write(tmp_path / "latin1.csv", "x,y\n1,caf\xe9\n".encode("latin-1")),
                       "not UTF-8 text (byte 0xe9 at line 2)"),
        "empty.npz": (_write(tmp_path / "empty.npz", b""),
                      "not an .npz archive (the file is empty)"),
        "truncated.npz": (_write(tmp_path / "truncated.npz", good.read_bytes()[:100]),
                          "damaged or truncated .npz archive"),
        "zip.npz": (str(tmp_path / "zip.npz"), "member 'X.txt' is not a .npy file"),
        "renamed.npz": (_write(tmp_path / "renamed.npz", npy.read_bytes()),
                        "holds a single .npy array, not an .npz archive"),
        "random.npz": (_write(tmp_path / "random.npz", os.urandom(4000).replace(b"PK", b"pk")),
                       "its first bytes are not a zip header"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["huge.csv", "latin1.csv", "empty.npz", "truncated.npz", "zip.npz", "renamed.npz",
     "random.npz"],
)  # fmt: skip
def test_damaged_data_files_are_one_line_errors(capsys, bad_files, name):
    path, message = bad_files[name]
    err = _one_line_error(capsys, ["compare", "--data", path, "--no-report", "--iterations", "2"])
    assert message in err and "allow_pickle" not in err


def test_npz_label_names_the_labels_array(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.random.RandomState(0).randn(20, 2), y=np.zeros(20),
             target=np.arange(20) % 2)  # fmt: skip
    data = initlab.datasets.load(str(tmp_path / "d.npz"), label="target")
    assert data.n_classes == 2
    with pytest.raises(
        ValueError, match=r"has no array 'y2' \(did you mean 'y'\?\); its arrays: X"
    ):
        initlab.datasets.load(str(tmp_path / "d.npz"), label="y2")


# ---------------------------------------------------------------- damaged results folders
@pytest.fixture
def saved(tmp_path):
    out = tmp_path / "cmp"
    compare(["he"], seeds=[0], out=out, **QUICK)
    return out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected an object with 'config'"),
        ('{"config": {}, "runs": [1]}', "run 0 must be an object"),
        ('{"config": {}, "runs": [{"scheme": "he", "seed": "x"}]}', "'seed' must be an integer"),
        ('{"config": {"lr": 0.01', "is not valid JSON (line 1, column 23"),
    ],
)
def test_resume_with_a_malformed_results_json_is_one_line(capsys, saved, text, message):
    (saved / "results.json").write_text(text)
    argv = ["compare", "--schemes", "he", "--seed", "0", "--iterations", "10", "--out",
            str(saved), "--resume", "--no-progress"]  # fmt: skip
    err = _one_line_error(capsys, argv)
    assert message in err and "results.json" in err


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "foreign", "malicious"])
def test_damaged_or_malicious_model_files_are_never_unpickled(saved, kind, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    path = saved / "models" / f"run-{store.run_id('he', 0)}.pt"
    good = path.read_bytes()
    payload = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "garbage": os.urandom(500),
        "foreign": _torch_bytes({"conv.weight": torch.zeros(3, 3)}),
        "malicious": pickle.dumps(_Payload()),
    }[kind]
    path.write_bytes(payload)
    import hashlib

    data = json.loads((saved / "results.json").read_text())
    data["runs"][0]["model_sha256"] = hashlib.sha256(payload).hexdigest()  # pretend it matches
    (saved / "results.json").write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        Comparison.load(saved)
    message = str(info.value)
    assert "weights_only=False" not in message and "\n" not in message
    assert str(path) in message
    assert not (tmp_path / "PWNED").exists()
    # resuming trains that run again instead of failing
    resumed = compare(["he"], seeds=[0], out=saved, resume=True, **QUICK)
    assert resumed.runs[0].model is not None and not (tmp_path / "PWNED").exists()


def _torch_bytes(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_crafted_layer_dims_are_refused_before_allocating(saved):
    data = json.loads((saved / "results.json").read_text())
    data["config"]["layer_dims"] = [2, 200_000, 200_000, 1]
    (saved / "results.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"needs about .* GB"):
        Comparison.load(saved)
    with pytest.raises(ValueError, match=r"different settings \(layer_dims"):
        compare(["he"], seeds=[0], out=saved, resume=True, **QUICK)


def test_huge_sizes_are_refused_with_an_estimate():
    with pytest.raises(ValueError, match=r"needs about .*more than this machine"):
        compare(["he"], layer_dims=[2, 10_000_000, 10_000_000, 1], **QUICK)


def test_corrupt_monitor_json_names_the_file(capsys, tmp_path):
    out = tmp_path / "cmp"
    compare(["he"], monitor_every=5, out=out, **QUICK)
    (out / "monitor.json").write_text('{"runs": [')
    with pytest.raises(ValueError, match=r"monitor.json is not valid JSON \(line 1, column 11"):
        Comparison.load(out)


# ---------------------------------------------------------------- seeds: one range
@pytest.mark.parametrize("seed", [-1, 2**63, 18446744073709551616, 1.5, True, "3"])
def test_one_seed_range_everywhere(seed):
    with pytest.raises((ValueError, TypeError), match=r"integer"):
        check_seed(seed)
    with pytest.raises((ValueError, TypeError), match=r"integer"):
        compare(["he"], seeds=[seed], init_style="model", **QUICK)
    with pytest.raises((ValueError, TypeError), match=r"integer"):
        initlab.train(initlab.mlp([2, 3, 1]), "circles", seed=seed, **QUICK)


def test_cli_seed_out_of_range_is_one_line(capsys):
    err = _one_line_error(capsys, ["compare", "--seed", "18446744073709551616"])
    assert "[0, 2**63)" in err


def test_largest_seed_works_with_model_init():
    result = compare(["he"], seeds=[2**63 - 1], init_style="model", **QUICK)
    assert result.runs[0].seed == 2**63 - 1 and result.runs[0].status == "finished"


# ---------------------------------------------------------------- many runs: a summary
def test_report_of_many_runs_is_a_summary(tmp_path):
    from initlab.report import plots, write_report

    result = compare(["he", "xavier", "zeros", "lecun"], seeds=list(range(5)),
                     init_style="model", **QUICK)  # fmt: skip
    assert len(result.runs) == 20 > plots.MANY_RUNS
    written = [os.path.basename(p) for p in write_report(result, str(tmp_path))]
    assert "summary.png" in written
    page = (tmp_path / "report.html").read_text()
    assert "20 runs by scheme" in page and "Best and worst 6 runs" in page
    assert page.count("<tr>") == 1 + 4 + 1 + 6  # scheme table and the detail table only
    assert len(page) < 600_000
    six = compare(["he", "xavier", "zeros"], seeds=[0, 1], init_style="model", **QUICK)
    assert plots.gradient_norms(result.runs)[16:24] == plots.gradient_norms(six.runs)[16:24]
