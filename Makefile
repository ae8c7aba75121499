# Eventfold: the commands people type. A newcomer needs two: `make local` and `make test`.
#
# Every tool beyond the Rust toolchain, Python and Node is installed here, pinned, into a
# virtualenv of its own, and skipped when already present (a stamp file records the version).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
EMULATOR ?= ministack
EMULATOR_PORT ?= 4566
PORT ?= 3000
export EMULATOR EMULATOR_PORT PORT
export SAM_CLI_TELEMETRY := 0
export CARGO_TERM_COLOR ?= never

MINISTACK_VERSION := 1.5.33
# What MiniStack needs to apply the template's SAM transform (deploy-local); SAM CLI's own.
SAM_TRANSLATOR_VERSION := 1.115.0
# What MiniStack needs to sign and check RS256 tokens (Cognito, the API's JWT authorizer) and for
# asymmetric KMS keys; without it its tokens carry random signatures.
CRYPTOGRAPHY_VERSION := 48.0.0
MOTO_VERSION := 5.2.5
CARGO_LAMBDA_VERSION := 1.9.2
SAM_CLI_VERSION := 1.170.0
SCHEMATHESIS_VERSION := 4.32.5
CARGO_DENY_VERSION := 0.20.2
# callgrind counts the CPU side's instructions in bench-check: Debian's package, unpacked.
VALGRIND_VERSION := 1:3.19.0-1

TOOLS_VENV := .venv
TOOLS_STAMP := $(TOOLS_VENV)/.installed-cargo-lambda-$(CARGO_LAMBDA_VERSION)-sam-$(SAM_CLI_VERSION)
MINISTACK_STAMP := .venv-ministack/.installed-$(MINISTACK_VERSION)-sam-translator-$(SAM_TRANSLATOR_VERSION)-cryptography-$(CRYPTOGRAPHY_VERSION)
MOTO_STAMP := .venv-moto/.installed-$(MOTO_VERSION)
SCHEMATHESIS_STAMP := .venv-schemathesis/.installed-$(SCHEMATHESIS_VERSION)
CARGO_DENY_STAMP := .tools/.installed-cargo-deny-$(CARGO_DENY_VERSION)
CARGO_DENY := .tools/bin/cargo-deny
VALGRIND_DIR := .tools/valgrind
VALGRIND_STAMP := $(VALGRIND_DIR)/.installed-$(subst :,-,$(VALGRIND_VERSION))
export VALGRIND := $(CURDIR)/$(VALGRIND_DIR)/usr/bin/valgrind
export VALGRIND_LIB := $(CURDIR)/$(VALGRIND_DIR)/usr/libexec/valgrind
EMULATOR_STAMP := $(if $(filter moto,$(EMULATOR)),$(MOTO_STAMP),$(MINISTACK_STAMP))

SAM := $(TOOLS_VENV)/bin/sam
CFN_LINT := $(TOOLS_VENV)/bin/cfn-lint
CARGO_LAMBDA := $(TOOLS_VENV)/bin/cargo-lambda
FUNCTIONS := command-api query-api project-accounts publish-events snapshot-streams react-standing-orders

.PHONY: help local test deploy-local lint docs deny soak validate build bench bench-check bench-baseline deploy rebuild-projection redrive snapshot \
        tools emulator-deps test-deps valgrind clean distclean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

# ------------------------------------------------------------------ the two commands
local: emulator-deps ## Start the emulator, create resources, serve the API and consumers, run a demo; Ctrl-C stops all
	cargo build -p eventfold-cli $(addprefix -p ,$(FUNCTIONS))
	scripts/local.sh target/debug/eventfold

# A full run builds every crate once: incremental state would only cost disk (5 GB of 12 on a
# fresh clone) and time. Iterating with cargo test keeps it.
test: export CARGO_INCREMENTAL := 0
test: tools emulator-deps test-deps ## Everything CI checks: fmt, clippy, docs, licenses, template lint, unit, handler, emulator and fault tests, request-cost check, API fuzzing
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --workspace --test emulator -- -D warnings
	scripts/domain-without-sdk.sh
	$(MAKE) --no-print-directory docs deny
	$(MAKE) --no-print-directory validate
	cargo build --workspace --all-targets
	scripts/with-emulator.sh scripts/test-suite.sh

deploy-local: tools emulator-deps ## The template deployed through CloudFormation on the emulator, functions run by it; prints API: <url>
	scripts/deploy-local.sh

# ------------------------------------------------------------------ everything else
lint: tools ## fmt check, clippy -D warnings, sam validate --lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(SAM) validate --lint -t infra/template.yaml

deny: $(CARGO_DENY_STAMP) ## Licenses, banned crates and sources of every dependency (cargo deny)
	$(CARGO_DENY) check licenses bans sources

soak: emulator-deps ## The fault test at length: SOAK_COMMANDS commands (default 3000) under resets, lost answers and a blackhole
	cargo build -p eventfold-tests --tests
	FAULT_COMMANDS=$${SOAK_COMMANDS:-3000} FAULT_ACCOUNTS=$${SOAK_ACCOUNTS:-20} FAULT_SEED=$${SOAK_SEED:-$$(date +%s)} \
	  scripts/with-emulator.sh cargo test -p eventfold-tests --test integration faults:: -- --nocapture

docs: ## The library's API documentation, warnings refused (target/doc/eventfold/index.html)
	RUSTDOCFLAGS="-D warnings" cargo doc -p eventfold --no-deps --all-features

validate: tools ## Lint the SAM template (offline): sam validate --lint and cfn-lint
	$(SAM) validate --lint -t infra/template.yaml
	$(CFN_LINT) infra/template.yaml

build: tools ## Release arm64 bootstraps of every function with cargo-lambda
	rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(abspath $(TOOLS_VENV))/bin:$$PATH" $(CARGO_LAMBDA) lambda build --release --arm64 $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do printf '  %-18s %s bytes\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap); done

bench: emulator-deps $(VALGRIND_STAMP) ## Benchmarks against the emulator, beside cqrs-es + dynamo-es; writes docs/BENCHMARKS.md and docs/bench/*.svg
	cargo build --release -p eventfold-bench $(addprefix -p ,$(FUNCTIONS))
	cargo build -p eventfold-bench
	cargo build --release --manifest-path bench/compare/Cargo.toml --target-dir target/compare
	cargo bench -p eventfold --bench micro
	scripts/with-emulator.sh target/release/eventfold-bench --out docs/BENCHMARKS.md --compare target/compare/release/eventfold-compare

bench-check: emulator-deps $(VALGRIND_STAMP) ## Requests, round trips, items, bytes, capacity units and CPU instructions per operation held against bench/baseline.json (part of make test)
	cargo build -p eventfold-bench
	scripts/with-emulator.sh target/debug/eventfold-bench --check bench/baseline.json

bench-baseline: emulator-deps $(VALGRIND_STAMP) ## Rewrite bench/baseline.json from this tree (after a deliberate change in cost)
	cargo build -p eventfold-bench
	scripts/with-emulator.sh target/debug/eventfold-bench --check bench/baseline.json --update

deploy: tools ## Build with SAM (cargo-lambda) and deploy, guided, to your AWS account (see README "Deploy")
	rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(abspath $(TOOLS_VENV))/bin:$$PATH" $(SAM) build -t infra/template.yaml --config-file $(CURDIR)/samconfig.toml
	$(SAM) deploy --guided --config-file $(CURDIR)/samconfig.toml

rebuild-projection: ## Rebuild the accounts read model from the events table (ARGS="--stack NAME" or a local --prefix)
	cargo run -q -p eventfold-cli -- projections rebuild accounts $(ARGS)

redrive: ## Redo the projector's dead-lettered batches (ARGS="--stack NAME --yes")
	cargo run -q -p eventfold-cli -- dlq redrive projector $(ARGS)

snapshot: ## Snapshot a stream or a whole category: make snapshot TARGET=Account[-<id>] (ARGS="--stack NAME")
	cargo run -q -p eventfold-cli -- snapshots backfill $(TARGET) $(ARGS)

# ------------------------------------------------------------------ tools
tools: $(TOOLS_STAMP) ## cargo-lambda and SAM CLI (with cfn-lint) into .venv
$(TOOLS_STAMP):
	rm -rf $(TOOLS_VENV)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q cargo-lambda==$(CARGO_LAMBDA_VERSION) aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

emulator-deps: $(EMULATOR_STAMP) ## The local AWS emulator (MiniStack, or moto with EMULATOR=moto) in its own venv
$(MINISTACK_STAMP):
	rm -rf .venv-ministack
	$(PYTHON) -m venv .venv-ministack
	.venv-ministack/bin/pip install -q ministack==$(MINISTACK_VERSION) aws-sam-translator==$(SAM_TRANSLATOR_VERSION) cryptography==$(CRYPTOGRAPHY_VERSION)
	touch $@
$(MOTO_STAMP):
	rm -rf .venv-moto
	$(PYTHON) -m venv .venv-moto
	.venv-moto/bin/pip install -q "moto[server]==$(MOTO_VERSION)"
	touch $@

$(CARGO_DENY_STAMP):
	cargo install --quiet --locked --no-default-features --root .tools cargo-deny@$(CARGO_DENY_VERSION)
	touch $@

test-deps: $(SCHEMATHESIS_STAMP) $(VALGRIND_STAMP) ## schemathesis (API fuzzing against the OpenAPI document) in its own venv, valgrind into .tools
$(SCHEMATHESIS_STAMP):
	rm -rf .venv-schemathesis
	$(PYTHON) -m venv .venv-schemathesis
	.venv-schemathesis/bin/pip install -q schemathesis==$(SCHEMATHESIS_VERSION)
	touch $@

valgrind: $(VALGRIND_STAMP) ## valgrind (callgrind counts instructions in bench-check), Debian's package unpacked into .tools
$(VALGRIND_STAMP):
	rm -rf $(VALGRIND_DIR) && mkdir -p $(VALGRIND_DIR)/deb
	cd $(VALGRIND_DIR)/deb && apt-get download -q valgrind=$(VALGRIND_VERSION)
	dpkg -x $(VALGRIND_DIR)/deb/valgrind_*.deb $(VALGRIND_DIR)
	rm -rf $(VALGRIND_DIR)/deb
	$(VALGRIND) --version
	touch $@

clean: ## Stop emulators this project started; remove build output and local state
	@for pidfile in .local/emulator-*.pid; do [ -e "$$pidfile" ] || continue; \
	  port=$${pidfile#.local/emulator-}; scripts/emulator.sh stop "$${port%.pid}"; done
	rm -rf .local target .aws-sam

distclean: clean ## clean, and remove every installed tool
	rm -rf $(TOOLS_VENV) .venv-ministack .venv-moto .venv-schemathesis .tools
