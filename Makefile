# The course's commands. Each sets up .venv on first use (Python 3.10 or newer, default python3).
#   make course   run every notebook top to bottom into build/ (committed notebooks stay untouched)
#   make test     make lint, then unit tests and nbval over the notebooks, in quick mode (what CI runs)
#   make lint     ruff's linter and formatter check over the package, tests, scripts and notebooks
#   make test-other-cpu  nbval over the notebooks again as on a CPU without vector units, one thread
#                 (CI runs it too: the stored outputs must not depend on the CPU)
#   make test-installed  the wheel installed into a fresh environment outside the checkout: import,
#                 the committed networks, chapters 5 and 6 under nbval (CI runs it too)
#   make lab      JupyterLab in the same environment
#   make refresh  re-execute the notebooks in place, storing fresh outputs, and re-sync the .py pairs
#   make book     the course as a static website in build/book/html, from the stored notebooks (nothing
#                 is executed; its own environment .venv-book, MathJax from npm, served by the site)
#   make book-check  make book, then open every page in headless Chromium (Debian's, installed with
#                 apt-get where missing) and fail on a console error, a broken image, formula or link
#   make lab-check  JupyterLab from .venv in headless Chromium, used as a reader does: chapter 3,
#                 in a temporary copy, run from the Run menu, failing on an error output or a cell
#                 left unrun, then its lambda slider moved and the figure checked to redraw, the
#                 screenshot in build/lab-check/ (selenium from .venv-book; Chromium as book-check)
#   make device-check OUT=folder  every CUDA code path on this machine's GPU in under 5 minutes, each
#                 check under its own time limit, the table in folder/device-check.md; with the machine's
#                 own python3, no .venv (made for a borrowed GPU machine: see book/guide/gpu-check.md). DRY_RUN=1:
#                 the same plumbing on the CPU at tiny sizes (CI runs it with PYTHON=.venv/bin/python)
#   make device-data  the CIFAR-10 subset the device check reads (device-data/), from $SIMAM_DATA
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
READY  := $(VENV)/.ready
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
EXECUTE := $(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
           --ExecutePreprocessor.kernel_name=python3

BOOK_PY   := .venv-book/bin/python
BOOK_HTML := build/book/html
MATHJAX   := build/book/static/mathjax/tex-chtml.js

.PHONY: course test lint test-other-cpu test-installed lab lab-check refresh book book-check device-check device-data clean

$(READY): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

course: $(READY)
	$(EXECUTE) --output-dir build/notebooks $(NOTEBOOKS)

test: lint
	$(PY) -m pytest

# pyproject.toml configures ruff (notebooks/ruff.toml narrows the notebooks' code to 88 characters).
lint: $(READY)
	$(PY) -m ruff check
	$(PY) -m ruff format --check

# torch and oneDNN limited to SSE4.1 (no AVX) and one thread: training gives other bits than on the
# CPU the outputs were stored on, and every checked output must still match. One-thread kernels
# leave the other cores idle, so the notebooks run side by side, each whole on one worker (loadfile).
test-other-cpu: $(READY)
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 \
	    $(PY) -m pytest -n auto --dist loadfile notebooks/

test-installed: $(READY)
	$(PY) scripts/check_installed.py

lab: $(READY)
	$(PY) -m jupyter lab notebooks/

refresh: $(READY)
	$(PY) -m jupytext --sync $(NOTEBOOKS)
	$(EXECUTE) --inplace $(NOTEBOOKS)
	$(PY) scripts/drop_widget_state.py $(NOTEBOOKS)
	$(PY) -m jupytext --sync $(NOTEBOOKS)

.venv-book/.ready: book/requirements.txt
	test -x $(BOOK_PY) || $(PYTHON) -m venv .venv-book
	$(BOOK_PY) -m pip install --quiet -r book/requirements.txt
	touch $@

# MathJax 3 (its fonts come with it; version 4 would fetch its fonts from a CDN), from the npm registry.
$(MATHJAX):
	command -v npm >/dev/null || (apt-get update && apt-get install -y --no-install-recommends npm)
	rm -rf build/book/npm build/book/static/mathjax && mkdir -p build/book/npm build/book/static
	cd build/book/npm && npm pack --silent mathjax@3.2.2 && tar xzf mathjax-3.2.2.tgz
	mv build/book/npm/package/es5 build/book/static/mathjax && rm -rf build/book/npm

book: .venv-book/.ready $(MATHJAX)
	$(BOOK_PY) -m sphinx -E -W --keep-going -q -b html book $(BOOK_HTML)
	@echo "website: $(BOOK_HTML)/index.html ($$(find $(BOOK_HTML) -name '*.html' | wc -l) pages)"

book-check: book
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	    (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver)
	$(BOOK_PY) scripts/check_book.py $(BOOK_HTML)

# The check runs in .venv-book, where selenium is; JupyterLab and the kernel run in .venv.
lab-check: $(READY) .venv-book/.ready
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	    (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver)
	$(BOOK_PY) scripts/check_lab.py --python $(PY)

# Not on $(READY): a GPU machine lent for minutes has torch in its own python3 and no network for a .venv.
device-check:
	$(if $(OUT),,$(error make device-check needs OUT=folder: where device-check.md and device-check.log go))
	$(PYTHON) scripts/device_check.py --out $(OUT) $(if $(DRY_RUN),--dry-run)

device-data:
	$(PYTHON) scripts/make_device_data.py --out device-data

clean:
	rm -rf build $(VENV) .venv-book
