# The course's commands. Each sets up .venv on first use (Python 3.10 or newer, default python3).
#   make course   run every notebook top to bottom into build/ (committed notebooks stay untouched)
#   make test     unit tests and nbval over the notebooks, in quick mode (what CI runs)
#   make test-other-cpu  nbval over the notebooks again as on a CPU without vector units, one thread
#                 (CI runs it too: the stored outputs must not depend on the CPU)
#   make lab      JupyterLab in the same environment
#   make refresh  re-execute the notebooks in place, storing fresh outputs, and re-sync the .py pairs
#   make gpu-check  every CUDA code path on this machine's GPU, one table (WRITE=1: into results/gpu/)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
READY  := $(VENV)/.ready
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
EXECUTE := $(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
           --ExecutePreprocessor.kernel_name=python3

.PHONY: course test test-other-cpu lab refresh gpu-check clean

$(READY): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

course: $(READY)
	$(EXECUTE) --output-dir build/notebooks $(NOTEBOOKS)

test: $(READY)
	$(PY) -m pytest

# torch and oneDNN limited to SSE4.1 (no AVX) and one thread: training gives other bits than on the
# CPU the outputs were stored on, and every checked output must still match.
test-other-cpu: $(READY)
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 $(PY) -m pytest notebooks/

lab: $(READY)
	$(PY) -m jupyter lab notebooks/

refresh: $(READY)
	$(PY) -m jupytext --sync $(NOTEBOOKS)
	$(EXECUTE) --inplace $(NOTEBOOKS)
	$(PY) -m jupytext --sync $(NOTEBOOKS)

gpu-check: $(READY)
	$(PY) scripts/gpu_check.py $(if $(WRITE),--write)

clean:
	rm -rf build $(VENV)
