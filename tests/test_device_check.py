"""``scripts/device_check.py`` and ``scripts/make_device_data.py`` without a GPU: the device check's
plumbing (each check in a child process under its own limit, a check that overruns it killed with
what it started while the rest go on, the table written row by row, the size of what a device call
sends, the Makefile target) with stand-in checks, and the CIFAR-10 subset built from stand-in
official files. ``make device-check DRY_RUN=1`` runs the real checks on the CPU (CI runs it)."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from simam.data import load_cifar

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def device_check():
    yield load_script("device_check")
    del sys.modules["device_check"]


@pytest.fixture(scope="module")
def make_device_data():
    yield load_script("make_device_data")
    del sys.modules["make_device_data"]


def write_official(root: Path, train_per_file: int = 40, test: int = 50) -> Path:
    """Stand-in official CIFAR-10 files under ``root``: random pixels, labels 0..9 in turn."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    files = [(f"data_batch_{n}", train_per_file) for n in range(1, 6)] + [("test_batch", test)]
    for name, count in files:
        data = torch.randint(0, 256, (count, 3072), dtype=torch.uint8, generator=generator).numpy()
        batch = {"batch_label": name, "data": data, "labels": [i % 10 for i in range(count)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [f"class {i}" for i in range(10)]})
    )
    return root


# Stand-in checks: each a small Python program, given its result file and the output folder.
WRITE_RESULT = (
    "import json, sys\ndef result(outcome, text):\n    open(sys.argv[1], 'w').write(json.dumps("
    "{'outcome': outcome, 'text': text}))\n"
)
STAND_INS = {
    # Starts a process of its own that would outlive it, then runs past its limit.
    "overruns": "import subprocess, sys, time\n"
    "sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open(sys.argv[2] + '/sleeper.pid', 'w').write(str(sleeper.pid))\n"
    "time.sleep(60)\n",
    # Reports how many rows the table held when it ran.
    "passes": WRITE_RESULT + "rows = open(sys.argv[2] + '/device-check.md').read().count('\\n| ')\n"
    "result('passed', f'{rows - 2} rows in the table before it')\n",
    "crashes": "import sys\nprint('Segmentation fault (a stand-in)')\nsys.exit(3)\n",
    "fails": WRITE_RESULT
    + "result('FAILED', 'AssertionError: weights differ: fc.weight | fc.bias')\n",
}


def stand_in_command(check, ctx, result: Path) -> list[str]:
    return [sys.executable, "-c", STAND_INS[check.name], str(result), str(ctx.out)]


def stand_in(device_check, name: str, limit: int, needs_data: bool = False):
    # run: the child is STAND_INS's
    return device_check.Check(name, limit, run=None, needs_data=needs_data)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def table_rows(path: Path) -> dict[str, str]:
    """The result cell of each row of a device-check table, by check."""
    rows = [
        line.split(" | ")
        for line in path.read_text().splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    return {row[0].removeprefix("| "): row[1] for row in rows[1:]}


def test_a_check_past_its_limit_is_killed_with_what_it_started_and_the_rest_go_on(
    device_check, tmp_path
):
    ctx = device_check.Context(tmp_path / "out", tmp_path, tmp_path / "data", dry_run=False)
    ctx.out.mkdir()
    (ctx.out / device_check.LOG).touch()
    report = device_check.Report(ctx.out, "a title")
    checks = [
        stand_in(device_check, "overruns", 1),
        stand_in(device_check, "passes", 20),
        stand_in(device_check, "crashes", 20),
        stand_in(device_check, "fails", 20),
    ]
    began = time.monotonic()
    device_check.run_checks(checks, ctx, report, has_data=True, command=stand_in_command)
    assert time.monotonic() - began < 15  # the 60 s sleeper did not hold anything up

    rows = table_rows(ctx.out / device_check.TABLE)
    assert rows == {
        "overruns": "timed out after 1 s",
        # the row of the check before it was written
        "passes": "passed: 1 rows in the table before it",
        "crashes": "FAILED: exited with status 3 and no result: Segmentation fault (a stand-in)",
        # no | to break the table
        "fails": "FAILED: AssertionError: weights differ: fc.weight / fc.bias",
    }
    lines = (ctx.out / device_check.TABLE).read_text().splitlines()
    assert lines[:4] == [
        "a title",
        "",
        "| check | result | limit (s) | seconds |",
        "| --- | --- | ---: | ---: |",
    ]
    # what `passes` left unused carries over
    assert lines[4].endswith("| 1 | 1 |") and "| 20 (up to " in lines[6]
    pid = int((ctx.out / "sleeper.pid").read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:  # its new parent reaps it
        time.sleep(0.05)
    assert not alive(pid), "the process the timed-out check started still runs"
    assert "Segmentation fault (a stand-in)" in (ctx.out / device_check.LOG).read_text()


def test_in_its_child_a_check_passes_is_skipped_or_fails_by_what_it_raises(
    device_check, tmp_path, capsys
):
    def fails(ctx):
        raise AssertionError("the metrics differ")

    def skips(ctx):
        raise device_check.Skipped("needs CUDA")

    checks = [
        device_check.Check("passes", 1, lambda ctx: "all well"),
        device_check.Check("fails", 1, fails),
        device_check.Check("skips", 1, skips),
    ]
    expected = {
        "passes": (0, "passed", "all well"),
        "fails": (1, "FAILED", "AssertionError: the metrics differ"),
        "skips": (0, "skipped", "needs CUDA"),
    }
    for name, (status, outcome, text) in expected.items():
        result = tmp_path / f"{name}.json"
        argv = [
            "--child",
            name,
            "--result",
            str(result),
            "--out",
            str(tmp_path),
            "--scratch",
            str(tmp_path),
        ]
        assert device_check.main(argv, checks=checks) == status
        assert json.loads(result.read_text()) == {"outcome": outcome, "text": text}
    # the traceback, for the log
    assert "AssertionError: the metrics differ" in capsys.readouterr().err

    argv = ["--child", "nonesuch", "--result", str(tmp_path / "r.json"), "--out", str(tmp_path)]
    assert device_check.main(argv, checks=checks) == 2
    assert "no check named 'nonesuch'; the checks: passes, fails, skips" in capsys.readouterr().err


def test_the_dry_run_writes_its_table_under_out_naming_the_machine_and_versions(
    device_check, tmp_path, capsys, monkeypatch
):
    carried = []
    monkeypatch.setattr(
        device_check, "sent_bytes", lambda repo, folders: carried.extend(folders) or (2**20, 0)
    )
    data = write_official(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["--dry-run", "--out", str(out), "--data-root", str(data)]
    assert (
        device_check.main(
            argv,
            checks=[stand_in(device_check, "passes", 20, needs_data=True)],
            command=stand_in_command,
        )
        == 0
    )
    lines = (out / device_check.TABLE).read_text().splitlines()
    assert lines[0].startswith("`make device-check DRY_RUN=1` on the CPU")
    assert f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}, Python " in lines[0]
    rows = table_rows(out / device_check.TABLE)
    assert rows["data"].startswith("passed: data/ found: 200 training and 50 test images, ")
    assert (
        rows["files sent"]
        == f"passed: 1.0 MiB of 64: the checkout's files 1.0 MiB, {data} outside it, not sent"
    )
    assert carried == []  # a data folder outside the checkout cannot travel with it
    assert rows["passes"] == "passed: 2 rows in the table before it"
    assert lines[-1].startswith("3 passed, 0 skipped, 0 FAILED, 0 timed out; ") and lines[
        -1
    ].endswith(" s in all.")
    assert (out / device_check.LOG).is_file()
    assert "\n".join(lines[2:]) in capsys.readouterr().out  # each row printed too


def test_without_data_the_checks_that_need_it_are_skipped_and_the_others_run(
    device_check, tmp_path, monkeypatch
):
    monkeypatch.setenv("SIMAM_DATA", str(tmp_path / "no-official-data"))
    out = tmp_path / "out"
    checks = [
        stand_in(device_check, "fails", 20, needs_data=True),
        stand_in(device_check, "passes", 20),
    ]
    argv = ["--dry-run", "--out", str(out), "--data-root", str(tmp_path / "device-data")]
    assert device_check.main(argv, checks=checks, command=stand_in_command) == 1
    rows = table_rows(out / device_check.TABLE)
    assert rows["data"].startswith(
        f"FAILED: no CIFAR-10 under {tmp_path / 'device-data'}, and the official "
        f"CIFAR-10 is not under {tmp_path / 'no-official-data'}"
    )
    assert rows["data"].endswith(
        "Build it with `make device-data` where the official files are, and send device-data/ along"
    )
    assert rows["fails"] == "skipped: no CIFAR-10 (see the data row)"
    assert rows["passes"].startswith("passed: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_real_check_says_so_and_checks_nothing(device_check, tmp_path, capsys):
    assert device_check.main(["--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert (
        "no CUDA GPU visible" in error
        and "--dry-run (DRY_RUN=1) checks the command's plumbing" in error
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_size_sent_counts_tracked_and_untracked_files_and_the_carried_folder(
    device_check, tmp_path
):
    repo = tmp_path / "repo"
    (repo / "device-data").mkdir(parents=True)
    files = {
        "tracked.py": 10,
        "untracked.md": 20,
        "ignored.log": 40,
        ".gitignore": 0,
        "device-data/batch": 80,
    }
    (repo / ".gitignore").write_text("*.log\n/device-data/\n")
    files[".gitignore"] = (repo / ".gitignore").stat().st_size
    for name, size in files.items():
        if name != ".gitignore":
            (repo / name).write_bytes(b"x" * size)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "tracked.py"], check=True)
    tree, carried = device_check.sent_bytes(repo, [repo / "device-data"])
    # the ignored log travels with neither
    assert (tree, carried) == (
        10 + 20 + files[".gitignore"],
        80,
    )
    with pytest.raises(OSError, match="not a git repository"):
        device_check.sent_bytes(tmp_path, [])


@pytest.mark.parametrize(
    ("dry_run", "sizes", "expected"),
    [
        (
            True,
            (40 * 2**20, 20 * 2**20),
            "passed: 60.0 MiB of 64: the checkout's files 40.0 MiB, device-data/ 20.0 MiB",
        ),
        (
            True,
            (40 * 2**20, 30 * 2**20),
            "FAILED: 70.0 MiB of 64: the checkout's files 40.0 MiB, device-data/ 30.0 MiB",
        ),
        (
            True,
            OSError("git: not found"),
            "FAILED: not computed without a git checkout (git: not found)",
        ),
        (
            False,
            OSError("git: not found"),
            "skipped: not computed without a git checkout (git: not found)",
        ),
    ],
)
def test_what_is_sent_must_stay_under_64_mib_and_the_dry_run_must_know_it(
    device_check, dry_run, sizes, expected, monkeypatch
):
    def sent_bytes(repo, carried):
        assert carried == [data]  # a data folder inside the checkout travels in the call's carry
        if isinstance(sizes, Exception):
            raise sizes
        return sizes

    data = device_check.REPO / "device-data"
    monkeypatch.setattr(data.__class__, "is_dir", lambda path: True)
    monkeypatch.setattr(device_check, "sent_bytes", sent_bytes)
    ctx = device_check.Context(Path("/unused"), Path("/unused"), data, dry_run)
    assert device_check.files_sent(ctx).cell() == expected


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_device_check_needs_out_and_uses_the_machines_python_without_the_venv():
    # as a top-level make, without the caller's settings
    # (make test passes its own to the tests it runs)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OUT", "DRY_RUN", "PYTHON", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    }
    dry = subprocess.run(
        ["make", "-n", "device-check", "OUT=/tmp/folder", "DRY_RUN=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert dry.stdout.splitlines() == [
        "python3 scripts/device_check.py --out /tmp/folder --dry-run"
    ]
    missing = subprocess.run(
        ["make", "-n", "device-check"], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert missing.returncode != 0 and "make device-check needs OUT=folder" in missing.stderr


# --------------------------------------------------------------------------------------------------
# The CIFAR-10 subset


def test_the_subset_is_class_balanced_seeded_and_in_the_official_layout(make_device_data, tmp_path):
    source = write_official(tmp_path / "official")
    done = make_device_data.build(source, tmp_path / "a", train_images=50, test_images=20, seed=3)
    assert (
        done.startswith(f"built {tmp_path / 'a' / 'cifar-10-batches-py'}")
        and "50 training, 20 test" in done
    )
    folder = tmp_path / "a" / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == [
        "batches.meta",
        *[f"data_batch_{n}" for n in range(1, 6)],
        "test_batch",
    ]
    assert not (tmp_path / "a" / ".partial").exists()
    for train, size in ((True, 50), (False, 20)):
        images, labels = load_cifar(tmp_path / "a", "cifar10", train=train)
        all_images, _ = load_cifar(source, "cifar10", train=train)
        assert (
            len(labels) == size
            and torch.bincount(labels, minlength=10).tolist() == [size // 10] * 10
        )
        rows = {bytes(image.flatten().tolist()) for image in all_images}
        # the official images, unchanged
        assert all(bytes(image.flatten().tolist()) in rows for image in images)
    make_device_data.build(source, tmp_path / "b", train_images=50, test_images=20, seed=3)
    assert all(
        (folder / p.name).read_bytes() == p.read_bytes()
        for p in (tmp_path / "b" / folder.name).iterdir()
    )

    assert "kept" in make_device_data.build(source, tmp_path / "a", train_images=50, test_images=20)
    with pytest.raises(
        ValueError, match="holds 50 training and 20 test images, not the 60 and 20 asked for"
    ):
        make_device_data.build(source, tmp_path / "a", train_images=60, test_images=20)


def test_bad_sizes_and_missing_data_are_clear_errors(make_device_data, tmp_path, capsys):
    source = write_official(tmp_path / "official")
    with pytest.raises(ValueError, match="subset size must be between 1 and 200, got 500"):
        make_device_data.build(source, tmp_path / "out", train_images=500, test_images=20)
    with pytest.raises(
        ValueError, match="at least one image for each of the 5 training batch files"
    ):
        make_device_data.build(source, tmp_path / "out", train_images=3, test_images=20)
    assert not (tmp_path / "out" / "cifar-10-batches-py").exists()
    assert (
        make_device_data.main(
            ["--data-root", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert (
        error.startswith("make_device_data: error: the official CIFAR-10 is not under")
        and error.count("\n") == 1
    )
