# The two commands of the README: `make run` (a conformance run that writes the HTML report)
# and `make test` (the harness's tests plus the `ci` conformance profile).  Both create or
# reuse the project's virtual environment in .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= bnconf-out

.PHONY: run test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	# tf-keras needs the `tensorflow` module, which tensorflow-cpu (from [keras]) provides;
	# its own dependency on the `tensorflow` package would add a second copy of it.
	$(BIN)/python -m pip install --quiet --no-deps 'tf-keras==2.21.0'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bnconf run --out $(OUT)

# The harness's own tests (two workers), then the conformance suite (`ci` profile, one
# process per framework, two at a time, the slow variants compared with their engines'
# defaults only: `--quick`); pytest's "no tests ran" (exit 5) fails like any
# other non-zero exit.
JOBS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $(JOBS)
	$(BIN)/bnconf run --profile ci --quick --jobs $(JOBS) --out $(OUT)/ci

clean:
	rm -rf $(OUT) .hypothesis
