# Entry points. Everything runs as root on Debian 12; see docs/operations.md.
SHELL := /bin/bash
PYTEST_ARGS ?=
IMAGES ?=

.DEFAULT_GOAL := help
.PHONY: help setup up test races images app-images engine down bench lint

help:
	@echo "make setup   install packages, venv, start engine + Redis, build images, migrate"
	@echo "make up      setup, then run Daphne + Celery worker + beat in the foreground"
	@echo "make test    setup, then pytest (PYTEST_ARGS='-k foo' to narrow), then the races on PostgreSQL"
	@echo "make races   setup, then only the concurrency tier (tests/races) on the project's PostgreSQL"
	@echo "make images  rebuild the sandbox images whose recipe changed (IMAGES='shell')"
	@echo "make app-images  build docker-compose.yml's images (app, redis, postgres) where inputs changed"
	@echo "make engine  start the project's lab-host Docker Engine"
	@echo "make down    stop the engine, Redis and PostgreSQL this project started"
	@echo "make bench   the benchmarks (session start, terminal, docker start, class join)"
	@echo "make lint    shell syntax, shellcheck, ruff, mypy, the import contracts (no engine needed)"

setup:
	scripts/setup.sh

# The started-file lets run.sh stop, on Ctrl-C, the engine/Redis that this
# very setup had to start (and nothing it merely reused).
# PLAYGROUND_DATABASE=postgres: on the project's PostgreSQL instead of SQLite.
up:
	@PLAYGROUND_STARTED_FILE="$$(mktemp -t playground-up.XXXXXX)" && \
	export PLAYGROUND_STARTED_FILE && \
	scripts/setup.sh && \
	if [ "$${PLAYGROUND_DATABASE:-}" = postgres ] && [ -z "$${DATABASE_URL:-}" ]; then \
		DATABASE_URL="$$(scripts/postgres.sh url)" && export DATABASE_URL; fi && \
	exec scripts/run.sh

# The main run stays on SQLite and leaves the races tier out (-m "not
# concurrency": deselected, not skipped, which CI would refuse); the
# concurrency tier then runs on the project's PostgreSQL, which setup starts
# for it (PLAYGROUND_POSTGRES=on).
RACES = DATABASE_URL="$$(scripts/postgres.sh url)" .venv/bin/pytest -m concurrency tests/races

test races: export PLAYGROUND_POSTGRES = on
# The compose tier (tests/compose) needs docker-compose.yml's images.
test: export PLAYGROUND_APP_IMAGES = on
test: setup
	.venv/bin/pytest -m "not concurrency" $(PYTEST_ARGS)
	$(RACES)

races: setup
	$(RACES)

images:
	scripts/build-images.sh $(IMAGES)

app-images:
	scripts/build-app-images.sh

engine:
	scripts/engine.sh start

down:
	scripts/postgres.sh stop
	scripts/registry.sh stop
	scripts/redis.sh stop
	scripts/engine.sh stop

bench: setup
	.venv/bin/python bench/session_start.py
	.venv/bin/python bench/terminal.py
	.venv/bin/python bench/docker_start.py
	.venv/bin/python bench/class_join.py

# Each step fails the target; none is skipped (make setup installs the tools:
# shellcheck from Debian, the rest from requirements-dev.txt). Their settings
# are in pyproject.toml; docs/operations.md says what each checks.
SHELL_SCRIPTS = scripts/*.sh .ci/run sandboxes/images/*/customize sandboxes/images/*/rootfs/usr/local/sbin/* \
	sandboxes/images/docker/rootfs/usr/local/lib/docker/cli-plugins/docker-compose sandboxes/mirror/*/customize \
	deploy/images/*/customize deploy/images/*/rootfs/usr/local/bin/* labs/*/setup.sh

lint:
	@for f in $(SHELL_SCRIPTS); do bash -n "$$f" || { echo "bash -n: $$f"; exit 1; }; done
	shellcheck -x $(SHELL_SCRIPTS)
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache
