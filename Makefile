# The two commands of the README: `make demo` (set up, then run the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node.js 24 LTS from the npm registry (package.json's `node`), first on PATH for every target, as npx puts it
# for `npx cdk`: the CDK app's jsii runtime then runs on a supported Node, whatever the machine's node is.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup demo test test-fast lint typecheck bench clean

setup: $(STAMP) node_modules/.installed

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# The aws-cdk CLI and Node.js (pinned in package-lock.json) are only needed for `cdk synth`.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch node_modules/.installed

demo: setup
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
