# Minidote: every command a developer or CI needs. `make test` and
# `make demo` install what they use; nothing is done by hand.
SHELL := /bin/bash
CARGO ?= cargo
# Seeds of the deterministic simulation run by `make test`.
MINIDOTE_SIM_SEEDS ?= 1000
export MINIDOTE_SIM_SEEDS

.PHONY: test lint test-core test-python test-wasm test-demo wasm chromium python relay demo demo-screenshot plots bench-demo bench bench-core bench-python bench-relay bench-wasm bench-text fuzz sim-long

## make test: formatting, lints and every test suite.
test: lint test-core test-python test-wasm test-demo

# A project-local virtualenv holds the Python tools and the built binding.
VENV := .venv
PY := $(VENV)/bin/python
$(VENV)/.tools: bindings-python/requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r bindings-python/requirements-dev.txt
	touch $@

## Build and install the Python binding into the venv (pip install ./bindings-python).
python: $(VENV)/.tools
	$(PY) -m pip install -q --force-reinstall --no-deps ./bindings-python

## The relay binary the Python tests start (debug build, shares test-core's cache).
RELAY_BIN := $(CURDIR)/target/debug/minidote-relay
export MINIDOTE_RELAY_BIN := $(RELAY_BIN)
relay:
	$(CARGO) build -p minidote-relay

test-python: python relay
	cd bindings-python && ../$(PY) -m mypy.stubtest minidote --allowlist stubtest-allowlist.txt
	cd bindings-python && ../scripts/pytest.sh ../$(PY) tests

## The npm package: wasm toolchain (scripts/wasm-toolchain.sh), wasm-bindgen-cli,
## build into bindings-wasm/pkg (scripts/build-wasm.sh).
wasm:
	scripts/build-wasm.sh

bindings-wasm/node_modules/.installed: bindings-wasm/package-lock.json
	cd bindings-wasm && npm ci --no-audit --no-fund --loglevel=error
	touch $@

chromium:
	@scripts/chromium.sh >/dev/null

## End-to-end tests of the web demo in Chromium, against the relay (and Python).
test-demo: wasm bindings-wasm/node_modules/.installed chromium relay python
	scripts/build-demo.sh
	cd web-demo && node --test --test-concurrency=1 tests/e2e.test.mjs

## Node and Chromium tests of the npm package (the Chromium ones start the
## relay and a Python replica, so they need both built).
test-wasm: wasm bindings-wasm/node_modules/.installed chromium relay python
	cd bindings-wasm && node_modules/.bin/tsc -p tests/tsconfig.json
	cd bindings-wasm && node --test --test-concurrency=1 tests/node.test.mjs tests/sequences.test.mjs tests/transport.test.mjs tests/inspect.test.mjs tests/codemirror.test.mjs tests/browser.test.mjs

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-core:
	$(CARGO) test --workspace --exclude minidote-python

## make demo: builds the wasm package, the web demo and the relay, installs the
## Python binding for the join snippet, then serves the demo at
## http://127.0.0.1:8080 with an embedded SQLite room log (DEMO_DATA).
DEMO_DATA ?= minidote-demo.db
DEMO_HTTP ?= 127.0.0.1:8080
DEMO_TCP ?= 127.0.0.1:7070
demo: wasm
	scripts/build-demo.sh
	$(CARGO) build --release -p minidote-relay
	@$(PY) -c "import minidote" 2>/dev/null || $(MAKE) --no-print-directory python
	@echo ""
	@echo "  Minidote demo: http://$(DEMO_HTTP)   (open it in two tabs; Ctrl-C stops the relay)"
	@echo "  Join from Python, in another terminal (appends to the chat):"
	@echo "    $(PY) -c 'import time, minidote; r = minidote.Replica(room=\"demo\"); r.connect(\"$(DEMO_TCP)\"); r.catch_up(); c = (\"chat\", \"list\", \"demo\"); n = len(r.read_objects([c])[0][0]); r.update_objects([(c, \"insert\", [n, {\"author\": \"Python\", \"text\": \"hello from Python\", \"time\": int(time.time() * 1000)}])]); r.close()'"
	@echo ""
	target/release/minidote-relay --listen $(DEMO_HTTP) --tcp-listen $(DEMO_TCP) --static web-demo/dist --data $(DEMO_DATA)

## The README's screenshot (docs/demo.png), taken by the e2e test of the app.
demo-screenshot: wasm bindings-wasm/node_modules/.installed chromium relay python
	scripts/build-demo.sh
	cd web-demo && MINIDOTE_README_SHOT=1 node --test --test-name-pattern="README" tests/e2e.test.mjs

## The demo joining rooms of 10k, 100k and 300k transactions (BENCHMARKS.md, "The demo").
bench-demo: wasm bindings-wasm/node_modules/.installed chromium python
	$(CARGO) build --release -p minidote-relay
	scripts/build-demo.sh
	node web-demo/bench/catchup.mjs

## Criterion benchmarks of the core (results go in BENCHMARKS.md).
bench-core:
	$(CARGO) bench -p minidote-core --bench core

## Python side-by-side benchmark (installs pycrdt and loro into the venv).
bench-python: python
	$(PY) -m pip install -q pycrdt loro
	$(PY) benchmarks/python_bench.py
	$(PY) benchmarks/python_traces.py
	PY=$(PY) scripts/plots.sh

## The charts of BENCHMARKS.md (docs/bench-*.svg), drawn from its tables.
plots: $(VENV)/.tools
	PY=$(PY) scripts/plots.sh

## Relay load benchmark against the y-websocket Node relay (npm install of
## @y/websocket-server into benchmarks/relay_load/node). RELAY_LOAD_ARGS adds
## flags, e.g. RELAY_LOAD_ARGS="--soak-secs 300".
RELAY_LOAD_ARGS ?=
bench-relay: $(VENV)/.tools
	$(CARGO) build --release -p minidote-relay -p relay-load
	cd benchmarks/relay_load/node && npm ci --no-audit --no-fund --loglevel=error
	target/release/relay-load $(RELAY_LOAD_ARGS)
	PY=$(PY) scripts/plots.sh

## The npm package side by side with yjs, automerge and loro-crdt (Node), and
## in Chromium (memory and IndexedDB-persisted throughput).
bench-wasm: wasm bindings-wasm/node_modules/.installed chromium relay $(VENV)/.tools
	cd bindings-wasm && node bench/node-bench.mjs && node bench/browser-bench.mjs && node bench/text-node.mjs && node bench/text-browser.mjs
	PY=$(PY) scripts/plots.sh

## make bench: native side-by-side benchmarks against automerge, yrs, loro and
## crdts (benchmarks/native: its own workspace, so the peers never build in
## make test). Writes the tables into BENCHMARKS.md between the markers.
BENCH_OPS ?= 1000000
bench: $(VENV)/.tools
	cd benchmarks/native && MINIDOTE_BENCH_OPS=$(BENCH_OPS) $(CARGO) bench --bench peers -- --noplot
	cd benchmarks/native && MINIDOTE_BENCH_OPS=$(BENCH_OPS) $(CARGO) run --release --quiet -- report target/criterion > target/report.md
	scripts/splice.sh BENCHMARKS.md native-bench benchmarks/native/target/report.md
	PY=$(PY) scripts/plots.sh

## Lists and text on every editing trace, beside yrs, loro, automerge and
## diamond-types (prints the tables of BENCHMARKS.md "Lists and text").
bench-text:
	cd benchmarks/native && $(CARGO) build --release --bin traces && MINIDOTE_TRACE_RUNS=3 target/release/traces

## Fuzz the decoders: FUZZ_SECONDS per target (default 60).
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

## Many more simulation seeds, optimised: make sim-long SEEDS=100000
SEEDS ?= 100000
sim-long:
	MINIDOTE_SIM_SEEDS=$(SEEDS) $(CARGO) test --release -p minidote-core --test simulation -- --nocapture
