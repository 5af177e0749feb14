# carat's entry points. Each target calls one script in scripts/ (or one tool), so the
# same steps run by hand, here and in CI (.ci/run).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# cargo-lambda (CDK bundling) lives in the venv that scripts/install-deps.sh makes.
VENV_PATH := $(CURDIR)/.run/venv/bin:$(PATH)

.PHONY: help local-up local-down status test bench synth deploy fmt lint

help:
	@echo "make local-up    install deps, build, start Redis cluster + AWS stand-in + carat-local"
	@echo "make local-down  stop what local-up started"
	@echo "make status      what of the local system runs"
	@echo "make test        every test (starts the services it needs, stops what it started)"
	@echo "make bench       benchmarks (docs/BENCHMARKS.md)"
	@echo "make synth       cdk synth of all stacks, with bundling"
	@echo "make deploy      cdk deploy --all to the account of your AWS credentials"
	@echo "make fmt         cargo fmt"
	@echo "make lint        cargo fmt --check and clippy -D warnings"

local-up:
	scripts/local-up.sh

local-down:
	scripts/local-down.sh

status:
	-scripts/redis-cluster.sh status
	-scripts/aws-standin.sh status
	-scripts/carat-local.sh status

test:
	scripts/test.sh

bench:
	scripts/bench.sh

synth:
	scripts/install-deps.sh
	cd cdk && PATH="$(VENV_PATH)" npm run synth

deploy:
	scripts/install-deps.sh
	cd cdk && PATH="$(VENV_PATH)" npx cdk deploy --all

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
