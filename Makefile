# The course's commands. Each sets up .venv on first use (Python 3.10 or newer, default python3).
#   make course   run every notebook top to bottom into build/ (committed notebooks stay untouched)
#   make test     unit tests and nbval over the notebooks (what CI runs)
#   make lab      JupyterLab in the same environment
#   make refresh  re-execute the notebooks in place, storing fresh outputs, and re-sync the .py pairs
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
READY  := $(VENV)/.ready
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
EXECUTE := $(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
           --ExecutePreprocessor.kernel_name=python3

.PHONY: course test lab refresh clean

$(READY): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

course: $(READY)
	$(EXECUTE) --output-dir build/notebooks $(NOTEBOOKS)

test: $(READY)
	$(PY) -m pytest

lab: $(READY)
	$(PY) -m jupyter lab notebooks/

refresh: $(READY)
	$(PY) -m jupytext --sync $(NOTEBOOKS)
	$(EXECUTE) --inplace $(NOTEBOOKS)
	$(PY) -m jupytext --sync $(NOTEBOOKS)

clean:
	rm -rf build $(VENV)
