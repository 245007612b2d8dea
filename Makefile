# The two commands of the README: `make demo` (set up, then run the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint typecheck bench clean

setup: $(STAMP) node_modules/.installed

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# The aws-cdk CLI (pinned in package-lock.json) is only needed for `cdk synth`.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch node_modules/.installed

# The venv is not activated for the caller: say how to type the README's `fmrec ...` commands as printed.
demo: setup
	@echo "[make] fmrec is installed in $(BIN); run 'source $(BIN)/activate' to type the README's fmrec commands as printed"
	$(BIN)/fmrec demo $(ARGS)

test: setup
	$(BIN)/ruff check .
	@# pytest exits 5 when it collects no test: report it instead of passing silently.
	$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The quick loop: every test but those marked slow (CDK synth, SageMaker SDK definitions, pipeline and training
# runs, HTTP servers, fuzzing); `make test` and CI run them all.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) node_modules cdk.out
