# The two commands that matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PY := .venv/bin/python
export STREAM_TEST_VAR_DIR ?= $(CURDIR)/var/test

.PHONY: venv provision up down run demo test test-unit test-integration test-browser lint bench

provision:
	@bash deploy/local/provision.sh

venv: provision

up: provision
	@bash deploy/local/stack.sh up

down:
	@bash deploy/local/stack.sh down

demo:
	@$(PY) -m stream.cli demo --api-url http://127.0.0.1:$${STREAM_API_PORT:-8000}

run: up demo
	@echo
	@echo "  Dashboard: http://127.0.0.1:$${STREAM_API_PORT:-8000}/   (Ctrl-C stops everything)"
	@echo
	@trap 'bash deploy/local/stack.sh down' INT TERM EXIT; while true; do sleep 3600; done

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
	@$(PY) -m ruff check stream tests bench
	@$(PY) -m mypy

bench: provision
	@bash deploy/local/test.sh --bench
