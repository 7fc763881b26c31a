# Two commands on a fresh machine:  make demo  (the full pipeline on the embedded default)  and  make test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_ID ?= demo
PYTEST_ARGS ?=

.PHONY: install demo test world clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[notebooks,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@bash scripts/ensure_chromium.sh
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fl1 run --run-id $(RUN_ID)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

world: $(STAMP)
	$(VENV)/bin/fl1 world --out data/world --seed 0

clean-venv:
	rm -rf $(VENV)
