# The two commands that matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PY := .venv/bin/python
export STREAM_TEST_VAR_DIR ?= $(CURDIR)/var/test

.PHONY: venv provision up down run demo test test-unit test-integration test-browser lint bench

provision:
	@bash deploy/local/provision.sh

venv: provision

# `make up REDIS=cluster WORKERS=3`: a local Redis Cluster and three workers (docs/SCALING.md).
up: provision
	@REDIS="$(REDIS)" WORKERS="$(WORKERS)" bash deploy/local/stack.sh up

down:
	@bash deploy/local/stack.sh down

demo:
	@bash deploy/local/stack.sh demo

# Up, demo, then wait in the foreground; Ctrl-C or SIGTERM stops everything and exits 0 (see run.sh).
run: provision
	@exec bash deploy/local/run.sh

# Tests run against their own Kafka and Redis (ports 19092/16380, var/test) so they
# never touch a stack started by `make up`.
test: provision
	@bash deploy/local/test.sh

test-unit: provision
	@$(PY) -m pytest -m unit -q

test-integration: provision
	@bash deploy/local/test.sh -m integration

test-browser: provision
	@bash deploy/local/test.sh -m browser

lint: provision
	@$(PY) -m ruff check stream tests bench deploy
	@$(PY) -m mypy

bench: provision
	@bash deploy/local/test.sh --bench
