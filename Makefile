# Two commands do everything: `make demo` (set up + run the whole pipeline on sample data)
# and `make test` (set up + run the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup browser lint demo test ui bench deploy worker clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $@

# The UI test drives Debian's Chromium (Playwright's own browser download is not used), so the
# test set-up installs it when missing; `make demo` does not need it.
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)

demo: setup
	$(BIN)/distillery run
	$(BIN)/distillery sql "select count(*) as shard_rows from shards"

# Lint, format and dead code (settings in pyproject.toml): a finding fails `make test`.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/vulture

test: setup browser lint
	$(BIN)/pytest -q --durations=15

ui: setup
	$(BIN)/distillery ui

# Every benchmark script; pii_v1.py (the frozen old patterns) and lake_compare.py (takes two lakes) are not benchmarks.
BENCHES = $(filter-out bench/pii_v1.py bench/lake_compare.py,$(wildcard bench/*.py))
bench: setup
	for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

deploy: setup
	$(BIN)/prefect work-pool create distillery --type process --overwrite
	$(BIN)/prefect --no-prompt deploy --all

worker: setup
	$(BIN)/prefect worker start --pool distillery

clean:
	rm -rf lake .run samples
