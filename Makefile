# The image-upload pipeline. `make run` runs it all on this machine; `make test` proves it.
# Every tool a target needs is installed by that target into ignored folders (.tools/), so a fresh
# clone on a fresh machine needs only Rust, Python 3, Node and Java (see README, Requirements).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ADDR ?= 127.0.0.1:3000
DATA_DIR ?= .data
CARGO ?= cargo

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: run
run: ## Run the whole pipeline on this machine (ADDR=127.0.0.1:3000 DATA_DIR=.data)
	$(CARGO) run --release --quiet -p local --bin uploader -- --data-dir '$(DATA_DIR)' serve --addr '$(ADDR)'

.PHONY: test
test: ## Run every test
	$(CARGO) test --workspace --locked

.PHONY: lint
lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: items
items: ## List the local items (DATA_DIR=.data)
	$(CARGO) run --release --quiet -p local --bin uploader -- --data-dir '$(DATA_DIR)' items
