"""The course as a user meets it outside a checkout: build the wheel, install it into a fresh
virtual environment in a temporary folder, and there import simam, load every committed network, put
SimAM into a torchvision ResNet, and run chapters 5 and 6 under nbval against their stored outputs.

    python scripts/check_installed.py            # what `make test-installed` and CI run

Nothing of the checkout is importable from there: the virtual environment is not editable, the
working folder is a temporary one, and the notebooks are copies. Exits non-zero on any failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
CHAPTERS = ("05_training_cifar_resnets.ipynb", "06_results_and_attention_maps.ipynb")

# Run by the installed interpreter, from the temporary folder.
USER_SCRIPT = """
import sys
from pathlib import Path
import torch, torchvision
import simam
from simam.zoo import DEFAULT_RESULTS, read_sums

checkout_runs, checkout_weights = int(sys.argv[1]), sys.argv[2].split(",")
assert "site-packages" in simam.__file__, \
f"simam imported from {simam.__file__}, not the installed wheel"
assert "simam.experiments.grid" not in sys.modules, "import simam imported the grid runner"
runs = len(Path(DEFAULT_RESULTS, "results.jsonl").read_text().splitlines())
assert runs == checkout_runs, \
f"the installed package carries {runs} committed runs, the checkout {checkout_runs}"
assert sorted(read_sums(DEFAULT_RESULTS)) == sorted(checkout_weights), \
"the installed weights differ from the checkout's"
for attention in ("none", "se", "cbam", "eca", "gc", "simam"):
    model = simam.pretrained("resnet20", attention)  # its SHA-256 checked against SHA256SUMS
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
resnet = simam.insert_attention(torchvision.models.resnet18(num_classes=10), "simam")
assert sum(isinstance(m, simam.SimAM) for m in resnet.modules()) == 8
resnet(torch.randn(1, 3, 64, 64)).sum().backward()
print(\
f"installed simam {simam.__version__}: {runs} committed runs, 6 networks loaded, SimAM in resnet18")
"""


def run(label: str, command: list, **kwargs) -> None:
    print(f"check_installed: {label}", flush=True)
    subprocess.run(command, check=True, **kwargs)


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simam-installed-") as temporary:
        temporary = Path(temporary)
        run(
            "building the wheel",
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-qq",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                temporary / "dist",
                CHECKOUT,
            ],
        )
        [wheel] = (temporary / "dist").glob("simam-*.whl")
        run("a fresh virtual environment", [sys.executable, "-m", "venv", temporary / "venv"])
        python = temporary / "venv" / "bin" / "python"
        # The course's and the tests' extras, at the versions the stored outputs were made with.
        run(
            f"installing {wheel.name}",
            [
                python,
                "-m",
                "pip",
                "install",
                "-qq",
                f"simam[course,test] @ {wheel.as_uri()}",
                "--constraint",
                CHECKOUT / "requirements.txt",
            ],
        )
        work = temporary / "work"
        work.mkdir()
        for chapter in CHAPTERS:
            shutil.copy(CHECKOUT / "notebooks" / chapter, work)
        shutil.copy(CHECKOUT / "nbval_sanitize.cfg", work)
        results = CHECKOUT / "results"
        lines = len((results / "results.jsonl").read_text().splitlines())
        weights = ",".join(
            line.split()[1]
            for line in (results / "weights" / "SHA256SUMS").read_text().splitlines()
        )
        environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        run(
            "import, pretrained, insert_attention",
            [python, "-c", USER_SCRIPT, str(lines), weights],
            cwd=work,
            env=environment,
        )
        run(
            "chapters 5 and 6 under nbval",
            [
                python,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--nbval",
                "--nbval-current-env",
                "--nbval-sanitize-with",
                "nbval_sanitize.cfg",
                "--nbval-cell-timeout",
                "900",
                *CHAPTERS,
            ],
            cwd=work,
            env=environment,
        )
    print(f"the installed course passed in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
