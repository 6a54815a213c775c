"""Open chapter 3 in JupyterLab in headless Chromium and use it as a reader does: run all cells
from the Run menu, fail on an error output, then move the lambda slider of the interactive figure
and check that the figure is redrawn.

    .venv-book/bin/python scripts/check_lab.py [--notebook PATH] [--python .venv/bin/python]

JupyterLab runs from the course's environment (--python) on a free localhost port, with a token
of its own, in a temporary folder that holds a copy of the notebook without its stored outputs:
every output the check reads comes from this run, and JupyterLab's autosave never writes to the
committed notebook. This script runs in .venv-book (selenium) with Debian's chromium and
chromedriver, like scripts/check_book.py. It saves a screenshot after the slider moved, prints the
time each step took, and exits non-zero with a one-line reason on the first failure.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "03_building_simam.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SLIDER_LABEL = "lambda_over_variance"  # the lambda FloatLogSlider of chapter 3's interact
SLIDER_STEPS = 4  # arrow-key presses: lambda / variance from 1e-4 to 1e-3 (step 0.25 in log10)

# JupyterLab's settings for the check, written into its own settings folder. Lab 4 renders only
# the cells near the viewport by default; with windowing off every cell's prompt and output is in
# the page. The news question would otherwise sit over the notebook as a pop-up.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# Runs in the page: the kernel's state, every code cell's prompt, and the text of every output
# JupyterLab renders as stderr (streams and exceptions alike: Lab 4 gives them the same element).
NOTEBOOK_STATE = """
const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
const kernel = document.querySelector('.jp-Toolbar-kernelName');
const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
return {
  kernel: kernel ? kernel.textContent.trim() : '',
  status: indicator ? indicator.dataset.status : '',
  prompts: cells.map(c => c.querySelector('.jp-InputArea-prompt')?.textContent.trim() ?? ''),
  stderr: cells.flatMap((c, i) => [...c.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(o => ({cell: i, text: o.textContent}))),
};
"""

# IPython's rendering of an exception: a traceback, or for a syntax error only its last line,
# "SyntaxError: ...". A warning ("UserWarning: ...") or other text on stderr is no error.
EXCEPTION = re.compile(r"Traceback \(most recent call last\)|^[\w.]*(Error|Exception): ", re.M)


class CheckFailed(Exception):
    """What a reader would see go wrong, in one line."""


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    """condition()'s first truthy value, polled; CheckFailed naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(poll_s)
    raise CheckFailed(f"{what} not within {timeout_s:.0f} s")


def copy_without_outputs(notebook: Path, folder: Path) -> Path:
    """The notebook's copy in folder, its stored outputs and execution counts removed."""
    content = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in content["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    folder.mkdir()
    copy = folder / notebook.name
    copy.write_text(json.dumps(content, indent=1, ensure_ascii=False), encoding="utf-8")
    return copy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(python: Path, folder: Path, log: Path) -> tuple[subprocess.Popen, str, str]:
    """JupyterLab serving folder/notebooks on localhost; returns the process, its URL and token.

    Its settings, workspaces and runtime files stay in folder, so that neither the user's own
    JupyterLab settings nor a workspace saved by `make lab` changes what the check sees."""
    port, token = free_port(), secrets.token_hex(16)
    settings = folder / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(folder / "lab-workspaces"),
        JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
        # the kernel imports this checkout's package, whichever environment runs it
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    # the quick course, as `make test` runs it: on a GPU machine chapter 3 would run full size
    env.setdefault("SIMAM_QUICK", "1")
    command = [
        str(python), "-m", "jupyter", "lab", "--no-browser",
        "--allow-root",  # CI containers run as root; JupyterLab refuses to start there without it
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder / 'notebooks'}",
    ]  # fmt: skip
    with open(log, "w") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        if server.poll() is not None:
            last = [line for line in log.read_text().splitlines() if line.strip()][-1:]
            raise CheckFailed(f"JupyterLab exited with code {server.returncode}: {''.join(last)}")
        request = urllib.request.Request(
            f"{url}api/status", headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_for(answers, 120, f"JupyterLab answering on {url} (log: {log})")
    except BaseException:
        stop_lab(server)
        raise
    return server, url, token


def stop_lab(server: subprocess.Popen) -> None:
    """SIGTERM: JupyterLab shuts its kernels down, then exits; killed if it hangs."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    return driver


def state(driver: webdriver.Chrome) -> dict:
    return driver.execute_script(NOTEBOOK_STATE)


def open_notebook(driver: webdriver.Chrome, url: str, token: str, name: str, cells: int) -> None:
    """The notebook open with all its code cells on the page and its kernel started and idle."""
    driver.get(f"{url}lab/tree/{name}?token={token}")

    def ready() -> bool:
        now = state(driver)
        # the indicator reads idle before the kernel has started; the toolbar says "No Kernel"
        return (
            len(now["prompts"]) == cells
            and now["kernel"] not in ("", "No Kernel")
            and now["status"] == "idle"
        )

    wait_for(ready, 180, f"{name} open with its {cells} code cells and an idle kernel")


def click_menu(driver: webdriver.Chrome, menu: str, command: str) -> None:
    """The menu bar's `menu`, then its item for JupyterLab's `command`, clicked as a reader does."""
    driver.find_element(By.XPATH, f"//li[contains(@class, 'lm-MenuBar-item')][.='{menu}']").click()
    item = f"li.lm-Menu-item[data-command='{command}']"
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, item), 10, f"{command} in the {menu} menu"
    )
    driver.find_element(By.CSS_SELECTOR, item).click()


def run_all(driver: webdriver.Chrome) -> None:
    """View > Expand All Code, then Run > Run All Cells.

    Chapter 3 folds the code of its helpers and solutions, and a folded cell shows no prompt: with
    every cell's code shown, every cell's prompt tells whether it ran."""
    click_menu(driver, "View", "notebook:show-all-cell-code")
    click_menu(driver, "Run", "runmenu:run-all")


def wait_until_run(driver: webdriver.Chrome, timeout_s: float) -> dict:
    """The notebook's state once no cell is queued or running and the kernel is idle.

    Run All marks every code cell [*] at once; the kernel aborts the cells queued after an
    error, and JupyterLab shows them as never run, [ ]."""
    # every prompt reads [ ] before (the copy has no execution counts): one that does not has run
    wait_for(lambda: set(state(driver)["prompts"]) != {"[ ]:"}, 30, "Run All starting the cells")
    started, reported = time.monotonic(), time.monotonic()

    def finished() -> dict | None:
        nonlocal reported
        now = state(driver)
        if "[*]:" not in now["prompts"] and now["status"] == "idle":
            return now
        if time.monotonic() - reported > 30:  # a sign of life in CI's log
            done = sum(p not in ("[*]:", "[ ]:") for p in now["prompts"])
            elapsed = time.monotonic() - started
            print(f"lab-check: {done} of {len(now['prompts'])} code cells run, {elapsed:.0f} s")
            reported = time.monotonic()
        return None

    return wait_for(finished, timeout_s, "every cell run and the kernel idle", poll_s=1)


def check_outputs(run: dict) -> None:
    """CheckFailed for the first exception a cell shows, or for a code cell left unrun."""
    for output in run["stderr"]:
        if EXCEPTION.search(output["text"]):
            lines = [line for line in output["text"].splitlines() if line.strip()]
            exception = next((line for line in reversed(lines) if EXCEPTION.match(line)), lines[-1])
            cell = f"code cell {output['cell'] + 1} (In {run['prompts'][output['cell']][:-1]})"
            raise CheckFailed(f"{cell} shows an error: {exception}")
    unrun = [i + 1 for i, prompt in enumerate(run["prompts"]) if not re.match(r"\[\d+\]:", prompt)]
    if unrun:
        raise CheckFailed(f"{len(unrun)} code cells did not run, the first is code cell {unrun[0]}")


def figure_source(driver: webdriver.Chrome) -> str:
    """The src of the image the interactive cell shows ('' while it is being redrawn)."""
    images = driver.find_elements(By.CSS_SELECTOR, ".widget-interact .widget-output img")
    return images[0].get_attribute("src") if images else ""


def move_slider(driver: webdriver.Chrome) -> str:
    """Press the right arrow on the lambda slider's handle, as a reader moves it from the keyboard,
    and wait for the figure to be redrawn; returns the slider's readout before and after."""
    interact = driver.find_elements(By.CSS_SELECTOR, ".widget-interact")
    if not interact:
        raise CheckFailed("no interactive figure (ipywidgets' interact) on the page")
    # the sliders and the whole figure on screen, for the screenshot
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", interact[0])
    sliders = interact[0].find_elements(By.XPATH, f".//label[.='{SLIDER_LABEL}']/..")
    if not sliders:
        raise CheckFailed(f"no slider {SLIDER_LABEL} in the interactive figure")
    before = wait_for(lambda: figure_source(driver), 60, "the interactive figure")
    readout = sliders[0].find_element(By.CSS_SELECTOR, ".widget-readout")
    old_value = readout.text
    handle = sliders[0].find_element(By.CSS_SELECTOR, "[role='slider']")
    handle.send_keys(*[Keys.ARROW_RIGHT] * SLIDER_STEPS)
    wait_for(lambda: readout.text != old_value, 10, f"the slider {SLIDER_LABEL} moving")

    # Each key press asks the kernel for a figure: the last has come once the kernel is idle and
    # the figure stays the same from one look to the next.
    seen = [before]

    def redrawn() -> bool:
        source = figure_source(driver)
        settled = source == seen[-1] and source != before and state(driver)["status"] == "idle"
        seen.append(source)
        return settled

    wait_for(redrawn, 120, "the figure redrawn after the slider moved", poll_s=1)
    return f"{SLIDER_LABEL} {old_value} -> {readout.text}"


def screenshot_saved(driver: webdriver.Chrome, path: Path) -> bool:
    """Whether the page could be saved to path (not when the browser itself has failed)."""
    try:
        return driver.save_screenshot(str(path))
    except WebDriverException:
        return False


class Stopwatch:
    """Seconds since the start, and per step, for the last line of the report."""

    def __init__(self):
        self.start = self.last = time.monotonic()
        self.laps = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{name} {now - self.last:.0f} s")
        self.last = now

    def total(self) -> float:
        return time.monotonic() - self.start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebook", type=Path, default=ROOT / "notebooks" / CHAPTER)
    parser.add_argument(
        "--python",
        type=Path,
        default=ROOT / ".venv" / "bin" / "python",
        help="the Python of the environment that runs JupyterLab and the kernel",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lab-check")
    parser.add_argument("--timeout", type=float, default=600, help="seconds Run All may take")
    args = parser.parse_args()
    if not args.python.is_file():
        sys.exit(f"lab-check: FAIL: no Python at {args.python} (make lab-check builds .venv)")
    content = json.loads(args.notebook.read_text(encoding="utf-8"))
    code_cells = sum(cell["cell_type"] == "code" for cell in content["cells"])
    args.out.mkdir(parents=True, exist_ok=True)
    screenshot = args.out / f"{args.notebook.stem}.png"
    failed = args.out / f"{args.notebook.stem}-failed.png"
    screenshot.unlink(missing_ok=True)  # no picture of an earlier run left to mislead
    failed.unlink(missing_ok=True)

    clock = Stopwatch()
    folder = Path(tempfile.mkdtemp(prefix="lab-check-"))
    server = driver = None
    try:
        copy = copy_without_outputs(args.notebook, folder / "notebooks")
        server, url, token = start_lab(args.python, folder, args.out / "jupyterlab.log")
        clock.lap("JupyterLab up")
        driver = browser()
        open_notebook(driver, url, token, copy.name, code_cells)
        clock.lap("notebook open")
        run_all(driver)
        check_outputs(wait_until_run(driver, args.timeout))
        clock.lap("Run All")
        moved = move_slider(driver)
        clock.lap("slider")
        driver.save_screenshot(str(screenshot))
    except (CheckFailed, WebDriverException) as failure:
        reason = str(failure).strip().splitlines()[0]
        if driver is not None and screenshot_saved(driver, failed):
            reason += f" (screenshot: {failed})"
        print(f"lab-check: FAIL {args.notebook.name}: {reason}")
        return 1
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            stop_lab(server)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"lab-check: {moved}; screenshot: {screenshot}")
    print(
        f"lab-check: passed {args.notebook.name} in {clock.total():.0f} s ({', '.join(clock.laps)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
