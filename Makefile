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

# The demo's sizes: a walk-through in under 20 minutes on 2 cores (SFT 2 epochs, RL 8 steps per mode, evaluation
# subsets). The seed study (configs/seed_study.yaml) measures over 3 seeds; `make demo DEMO_PARAMS=` runs every
# notebook at its defaults (about 45 minutes).
DEMO_PARAMS ?= sft_steps=226 rl_steps=8 heldout_limit=64 "scaling_sizes=[16, 32]" scaling_eval_limit=10 \
	futurebench_limit=100 twiffbench_limit=20 audit_items=48

demo: $(STAMP)
	$(VENV)/bin/fl1 run --run-id $(RUN_ID) $(if $(strip $(DEMO_PARAMS)),--param $(DEMO_PARAMS))

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

world: $(STAMP)
	$(VENV)/bin/fl1 world --out data/world --seed 0

clean-venv:
	rm -rf $(VENV)
