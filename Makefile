# Entry points. Everything runs as root on Debian 12; see docs/operations.md.
SHELL := /bin/bash
PYTEST_ARGS ?=
IMAGES ?=

.DEFAULT_GOAL := help
.PHONY: help setup up test images engine down bench lint

help:
	@echo "make setup   install packages, venv, start engine + Redis, build images, migrate"
	@echo "make up      setup, then run Daphne + Celery worker + beat in the foreground"
	@echo "make test    setup, then pytest (PYTEST_ARGS='-k foo' to narrow)"
	@echo "make images  rebuild the sandbox images whose recipe changed (IMAGES='shell')"
	@echo "make engine  start the project's lab-host Docker Engine"
	@echo "make down    stop the engine and Redis this project started"
	@echo "make bench   the benchmarks (session start, terminal, docker start, class join)"
	@echo "make lint    shell syntax (+ shellcheck, ruff when installed)"

setup:
	scripts/setup.sh

# The started-file lets run.sh stop, on Ctrl-C, the engine/Redis that this
# very setup had to start (and nothing it merely reused).
up:
	@PLAYGROUND_STARTED_FILE="$$(mktemp -t playground-up.XXXXXX)" && \
	export PLAYGROUND_STARTED_FILE && \
	scripts/setup.sh && \
	exec scripts/run.sh

test: setup
	.venv/bin/pytest $(PYTEST_ARGS)

images:
	scripts/build-images.sh $(IMAGES)

engine:
	scripts/engine.sh start

down:
	scripts/registry.sh stop
	scripts/redis.sh stop
	scripts/engine.sh stop

bench: setup
	.venv/bin/python bench/session_start.py
	.venv/bin/python bench/terminal.py
	.venv/bin/python bench/docker_start.py
	.venv/bin/python bench/class_join.py

lint:
	@for f in scripts/*.sh .ci/run sandboxes/images/*/rootfs/usr/local/sbin/*; do bash -n "$$f" || exit 1; done
	@if command -v shellcheck >/dev/null; then shellcheck -x scripts/*.sh .ci/run; else echo "shellcheck not installed: skipped"; fi
	@if [ -x .venv/bin/ruff ]; then .venv/bin/ruff check .; else echo "ruff not installed in .venv: skipped"; fi
