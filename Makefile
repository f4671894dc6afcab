# Minidote: every command a developer or CI needs. `make test` and
# `make demo` install what they use; nothing is done by hand.
SHELL := /bin/bash
CARGO ?= cargo
# Seeds of the deterministic simulation run by `make test`.
MINIDOTE_SIM_SEEDS ?= 1000
export MINIDOTE_SIM_SEEDS

.PHONY: test lint test-core demo bench-core fuzz sim-long

## make test: formatting, lints and every test suite.
test: lint test-core

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-core:
	$(CARGO) test --workspace

## make demo: the relay + web demo. They are not built yet (see README).
demo:
	@echo "make demo: the relay (minidote-relay) and the web demo are not built yet;" >&2
	@echo "only the core crate exists so far. See README.md, 'Status'." >&2
	@exit 1

## Criterion benchmarks of the core (results go in BENCHMARKS.md).
bench-core:
	$(CARGO) bench -p minidote-core --bench core

## Fuzz the decoders: FUZZ_SECONDS per target (default 60).
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

## Many more simulation seeds, optimised: make sim-long SEEDS=100000
SEEDS ?= 100000
sim-long:
	MINIDOTE_SIM_SEEDS=$(SEEDS) $(CARGO) test --release -p minidote-core --test simulation -- --nocapture
