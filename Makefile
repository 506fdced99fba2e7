# pman's make targets. Every target prepares what it needs on first use
# (Debian packages, .venv); see scripts/bootstrap.

VENV := .venv
BIN := $(VENV)/bin
# Building and running the images (Debian packages): podman, runc as its runtime (crun
# refuses machines whose cgroups are in hybrid mode), mmdebstrap for the stand-in base
# image made where python:3.11-slim-bookworm cannot be pulled.
IMAGE_TOOLS := podman runc mmdebstrap

.PHONY: demo test unit images serve lint format bench clean venv venv-local

# Everything, test tools included.
venv:
	@scripts/bootstrap

# Only what running pman on this machine needs: quicker on a fresh machine.
venv-local:
	@scripts/bootstrap --extras local

# One job through Swift, the local cluster and pman, shown step by step; stops everything.
demo: venv-local
	@$(BIN)/python -m devstack.demo

# The same stack left running (Ctrl-C stops it); prints the commands to try.
serve: venv-local
	@$(BIN)/localcluster up --dir .state $(SERVE_OPTIONS)

# pman's two images, built with podman from Dockerfile and Dockerfile.publisher; prints
# their sizes and build times (see README.rst, "Building the images").
images: venv
	@scripts/bootstrap $(IMAGE_TOOLS)
	@$(BIN)/python scripts/images.py

test: venv
	@scripts/bootstrap $(IMAGE_TOOLS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The unit tier alone (no Swift, no cluster): seconds.
unit: venv
	$(BIN)/python -m pytest -m unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	@scripts/bootstrap rclone
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-* build dist *.egg-info .pytest_cache .ruff_cache .demo .state
