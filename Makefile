# SSE gateway: Cloudflare Worker (Rust -> wasm) + pure core crate.
# `make dev` and `make test` set everything up themselves (scripts/setup.sh).

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup dev test build lint unit e2e test-docs clean

help: ## List the targets
	@echo "Targets:"
	@grep -E '^[a-z][a-z0-9_-]*:.*## ' $(MAKEFILE_LIST) | \
		sed -E 's/^([a-z0-9_-]+):.*## (.*)/  make \1\t\2/' | expand -t 16

setup: ## Install toolchain pieces if missing (idempotent; fast when done)
	@bash scripts/setup.sh

dev: ## Set up, then run the gateway with wrangler dev on http://127.0.0.1:8787
	@bash scripts/dev.sh

test: ## Set up, then run every test; results in test-results/
	@bash scripts/test.sh

build: setup ## Build the Worker (release wasm) into build/
	@bash scripts/build-worker.sh

lint: ## cargo fmt --check, cargo clippy -D warnings (native + wasm Worker), no module import cycle
	@bash scripts/lint.sh

unit: ## Unit + property tests of crates/core (cargo test -p sse-core)
	@. scripts/env.sh && cargo test -p sse-core

e2e: build ## Set up, build, then run the end-to-end suite (tests/e2e/run.mjs)
	@. scripts/env.sh && WORKER_BUILD_SKIP=1 node tests/e2e/run.mjs

test-docs: build ## Run the docs' shell commands against wrangler dev + a native node (tests/docs/run.mjs)
	@. scripts/env.sh && WORKER_BUILD_SKIP=1 node tests/docs/run.mjs

clean: ## Remove build outputs: target/ build/ dist/ .wrangler/ (local DO state) test-results/logs/
	@. scripts/env.sh && cargo clean
	rm -rf build dist .wrangler test-results/logs

# --- native runtime (crates/server) --------------------------------------------

.PHONY: server cluster cluster-stop test-native bench-native

server: ## Build (release) and run one native node on http://127.0.0.1:8080 (foreground)
	@bash scripts/server.sh

cluster: ## Start redis (127.0.0.1:6390) + three native nodes on 127.0.0.1:8081-8083
	@bash scripts/cluster.sh start

cluster-stop: ## Stop the native cluster started by `make cluster`
	@bash scripts/cluster.sh stop

test-native: ## Native runtime tests: unit + Redis adapter, 3-node cluster, e2e (single + cluster)
	@bash scripts/test-native.sh unit && bash scripts/test-native.sh cluster && bash scripts/test-native.sh e2e

bench-native: ## Native benchmarks: idle RSS, fan-out, node-to-node transport (benchmark-results/)
	@bash scripts/bench-native.sh

.PHONY: fuzz
fuzz: ## Fuzz crates/core (cargo fuzz), each target FUZZ_SECONDS s (default 60); results in test-results/fuzz.md
	@FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_TARGETS="$(FUZZ_TARGETS)" bash scripts/fuzz.sh

.PHONY: soak
soak: ## Soak one native node: churn + publishing for SOAK_MINUTES (default 20); test-results/soak.md
	@SOAK_MINUTES="$(or $(SOAK_MINUTES),20)" bash scripts/soak.sh

.PHONY: bench bench-quick bench-cost
bench: ## Benchmarks: every scenario on native, cluster, wrangler dev and nginx+nchan, plus criterion and the Cloudflare cost scenario (~14-15 min); benchmark-results/latest.md
	@bash benches/run.sh full

bench-cost: ## Cloudflare bill of an idle-heavy workload under wrangler dev vs the kept baseline (~7 min); benchmark-results/cloudflare-cost.md
	@bash benches/cost.sh

bench-quick: ## Benchmarks: a short pass over every target (~1 min); benchmark-results/latest.md
	@bash benches/run.sh quick
