# The two commands of the README: `make demo` (set up, then run the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node.js 24 LTS from the npm registry (package.json's `node`), first on PATH for every target, as npx puts it
# for `npx cdk`: the CDK app's jsii runtime then runs on a supported Node, whatever the machine's node is.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup demo test test-fast lint typecheck hooks bench clean

setup: $(STAMP) node_modules/.installed

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@# numba compiles the trainer's kernels into its cache now, not in the first TrainModel (~12 CPU-s)
	$(BIN)/python -m twins.training --compile-kernels
	$(BIN)/python -c "from fmrec.evaluation.sparse_products import compile_kernels; compile_kernels()"
	touch $(STAMP)

# The aws-cdk CLI and Node.js (pinned in package-lock.json) are only needed for `cdk synth`.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch node_modules/.installed

# The venv is not activated for the caller: say how to type the README's `fmrec ...` commands as printed.
demo: setup
	@echo "[make] fmrec is installed in $(BIN); run 'source $(BIN)/activate' to type the README's fmrec commands as printed"
	$(BIN)/fmrec demo $(ARGS)

# Lint, format check, then mypy (every source folder, pyproject's [tool.mypy] files) beside pytest: pytest runs
# on one core and a fresh clone's mypy (no cache) takes minutes of the other, so the two together take pytest's
# time. mypy's report is printed after pytest's and fails the target; pytest's summary stays its last line when
# mypy passes.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# pytest exits 5 when it collects no test: report it instead of passing silently.
	@log=$$(mktemp); $(BIN)/mypy >"$$log" 2>&1 & mypy_pid=$$!; \
	  echo "mypy: running beside pytest"; \
	  $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; rc=1; fi; \
	  wait $$mypy_pid; mypy_rc=$$?; \
	  if [ $$mypy_rc -ne 0 ]; then cat "$$log"; echo "mypy failed (exit $$mypy_rc; 137: killed, e.g. out of memory)" >&2; rc=1; fi; \
	  rm -f "$$log"; exit $$rc

# The quick loop: every test but those marked slow (CDK synth, SageMaker SDK definitions, pipeline and training
# runs, HTTP servers, fuzzing); `make test` and CI run them all.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The same checks as git hooks before each commit (.pre-commit-config.yaml: local hooks, no network needed).
hooks: setup
	$(BIN)/pre-commit install

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) node_modules cdk.out
