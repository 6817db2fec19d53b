# mlplab: every target creates or refreshes .venv first: python3 -m venv, the locked versions
# of every package (requirements.lock, hash-checked), then mlplab itself (pip install -e).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
EXTRAS ?= dev
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check
# make lock: uv resolves one lock for every platform and Python >= 3.10 (pip-compile and pip lock
# resolve for the machine they run on only); uv itself lives in its own environment
UV     := uv==0.13.9
SWEEP  ?= default
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help venv lock lint format docs sweep sweep-smoke blog table report remedies optimisers nielsen chaos isometry bench bench-torch bench-jax mutation test test-slurm test-browser clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	@$(BIN)/python -c 'import sys' 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PIP) --require-hashes --no-deps -r $(LOCK)
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $@

venv: $(STAMP) ## create or refresh the virtual environment in .venv, from requirements.lock

lock: ## refresh requirements.lock: the newest versions pyproject.toml allows, for every platform
	@.venv-lock/bin/uv --version >/dev/null 2>&1 || { rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && .venv-lock/bin/python -m pip install -q --disable-pip-version-check '$(UV)'; }
	.venv-lock/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.10 --generate-hashes \
		--upgrade --custom-compile-command 'make lock' -o $(LOCK)

lint: $(STAMP) ## ruff: the lint rules and the format of pyproject.toml (CI runs it before the tests)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff: format the code and apply the lint rules' safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# -E: a fresh build each time (the generated tables read the code, which Sphinx does not watch);
# -W --keep-going: every warning is an error, all of them reported
docs: $(STAMP) ## build the documentation site offline into docs/site/ (Sphinx; every warning an error)
	$(BIN)/python -m sphinx -E -W --keep-going -q -b html docs docs/site
	@echo "docs/site/index.html"

sweep: $(STAMP) ## run the default sweep (300 runs) on all cores; ARGS="train.lr=0.1" adds overrides
	$(BIN)/python -m mlplab -m sweep=$(SWEEP) $(ARGS)

sweep-smoke: $(STAMP) ## run a tiny sweep (8 runs, seconds)
	$(BIN)/python -m mlplab -m sweep=smoke $(ARGS)

blog: $(STAMP) ## the blog post's study on 4 data sets (960 runs, four sweep files, ~2.5 min on 2 cores) into results/blog/
	$(BIN)/python -m mlplab -m sweep=blog $(ARGS)
	$(BIN)/python -m mlplab -m sweep=blog_explode $(ARGS)
	$(BIN)/python -m mlplab -m sweep=blog_data $(ARGS)
	$(BIN)/python -m mlplab -m sweep=blog_data_explode $(ARGS)

table: blog ## the post's comparison table, checked: results/blog_table.{md,parquet,csv}, and results/blog/report.html
	$(BIN)/python -m mlplab.analysis blog results/blog
	$(BIN)/python -m mlplab.analysis report results/blog

report: $(STAMP) ## report.md + self-contained report.html + figures/ for results/$(SWEEP)/ (run its sweep first)
	$(BIN)/python -m mlplab.analysis report results/$(SWEEP)

optimisers: $(STAMP) ## sgd, momentum, adam, rmsprop (and adam with eps 1e-30) at their best learning rate, depth 4-32, blobs and MNIST (3,000 runs, ~35 min on 2 cores) + its report
	$(BIN)/python -m mlplab -m sweep=optimisers $(ARGS)
	$(BIN)/python -m mlplab -m sweep=optimisers_momentum $(ARGS)
	$(BIN)/python -m mlplab -m sweep=optimisers_adam $(ARGS)
	$(BIN)/python -m mlplab -m sweep=optimisers_rmsprop $(ARGS)
	$(BIN)/python -m mlplab -m sweep=optimisers_adam_eps $(ARGS)
	$(BIN)/python -m mlplab.analysis report results/optimisers

remedies: $(STAMP) ## every remedy against its plain twin, sigmoid/tanh at depth 8-32 (315 runs, a few minutes) + its report
	$(BIN)/python -m mlplab -m sweep=remedies $(ARGS)
	$(BIN)/python -m mlplab -m sweep=remedies_relu $(ARGS)
	$(BIN)/python -m mlplab.analysis report results/remedies

nielsen: $(STAMP) ## Nielsen's speed of learning per hidden layer: MNIST (300 + 15 runs, ~2 min), 8x8 digits (30 runs)
	$(BIN)/python -m mlplab -m sweep=nielsen_mnist $(ARGS)
	$(BIN)/python -m mlplab -m sweep=nielsen_mnist_training $(ARGS)
	$(BIN)/python -m mlplab -m sweep=nielsen $(ARGS)
	$(BIN)/python -m mlplab.analysis nielsen results/nielsen_mnist
	$(BIN)/python -m mlplab.analysis nielsen results/nielsen
	$(BIN)/python -m mlplab.analysis report results/nielsen_mnist

chaos: $(STAMP) ## the edge of chaos (Schoenholz et al. 2017): decay per layer over σ_w² × σ_b², trainable depth vs 6 ξ_c (600 runs, ~5 min)
	$(BIN)/python -m mlplab -m sweep=chaos $(ARGS)
	$(BIN)/python -m mlplab -m sweep=chaos_train $(ARGS)
	$(BIN)/python -m mlplab.analysis chaos results/chaos
	$(BIN)/python -m mlplab.analysis report results/chaos

isometry: $(STAMP) ## dynamical isometry: the Jacobian's singular values per depth, activation and init at the edge of chaos vs free probability; orthogonal vs Gaussian tanh trained at depth 64-128 (480 runs, ~5 min on 2 cores) + its report
	$(BIN)/python -m mlplab -m sweep=isometry $(ARGS)
	$(BIN)/python -m mlplab -m sweep=isometry_width $(ARGS)
	$(BIN)/python -m mlplab -m sweep=isometry_train $(ARGS)
	$(BIN)/python -m mlplab.analysis report results/isometry

bench: $(STAMP) ## every speed goal as a ratio measured in one run, with ✔/✘ and the machine -> results/bench/bench.md
	$(BIN)/python experiments/bench/bench.py $(ARGS)

bench-torch: $(STAMP) ## install the optional comparison (PyTorch 2.13.0, CPU build), then make bench
	$(PIP) -e '.[$(EXTRAS),bench]'
	$(BIN)/python experiments/bench/bench.py $(ARGS)

bench-jax: $(STAMP) ## install the optional JAX comparison (jax 0.10.2, CPU), then make bench ARGS="--sections jax"
	$(PIP) -e '.[$(EXTRAS),bench-jax]'
	$(BIN)/python experiments/bench/bench.py --sections jax $(ARGS)

mutation: $(STAMP) ## do the tests fail when the code is wrong? mutmut over the core and the commit path -> results/mutation/
	$(PIP) -e '.[$(EXTRAS),mutation]'
	$(BIN)/python experiments/mutation/mutation.py $(ARGS)

# The tests run with Python's bytecode cache even where PYTHONDONTWRITEBYTECODE is set: each
# test worker, and each interpreter a test starts, then reads mlplab's and the tests' compiled
# modules instead of compiling them again (about 2 s of CPU per worker). __pycache__/ is ignored.
test: $(STAMP) ## run the test suite, in parallel on every core
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n auto $(ARGS)

test-slurm: $(STAMP) ## opt-in, as root: install SLURM from Debian, run a sweep through it, check it, stop it
	$(BIN)/python tests/slurm/check_slurm.py

test-browser: $(STAMP) ## opt-in: the blog and remedies reports in headless Chromium (Debian's), offline, checked
	$(PIP) -e '.[$(EXTRAS),browser]'
	$(BIN)/python tests/browser/check_browser.py

clean: ## remove the virtual environments and caches (results stay)
	rm -rf $(VENV) .venv-lock .pytest_cache *.egg-info
