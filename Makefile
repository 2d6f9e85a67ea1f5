# Baton's build, test and development targets. `make` (or `make help`) lists them.

.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Tests and Baton look CRIU up on PATH: the CRIU 4.x that `make deps` builds lives in
# /usr/local/sbin and must win over anything in /usr/sbin. Go tools (staticcheck) live in
# $(go env GOBIN) or $(go env GOPATH)/bin; Go itself normally in /usr/local/go/bin.
ORIG_PATH := $(PATH)
GO_PATH_FOR_SHELL := $(ORIG_PATH):/usr/local/go/bin
GOBIN_DIR := $(shell PATH='$(GO_PATH_FOR_SHELL)'; d=$$(go env GOBIN 2>/dev/null); [ -n "$$d" ] || d=$$(go env GOPATH 2>/dev/null)/bin; echo "$$d")
export PATH := /usr/local/sbin:$(GOBIN_DIR):$(ORIG_PATH):/usr/local/go/bin

BIN      := bin/baton
# The fence drivers, built next to $(BIN): baton server finds baton-fence-NAME in its own directory.
FENCE_DRIVERS := ./plugins/fence/drivers/fenceagent/cmd/baton-fence-agent \
                 ./plugins/fence/drivers/ipmi/cmd/baton-fence-ipmi \
                 ./plugins/fence/drivers/process/cmd/baton-fence-process
FUZZTIME ?= 10s
ARGS     ?=

.PHONY: help deps build test run lint bench bench-migrate bench-failover bench-failover-load bench-placement bench-fleet fuzz clean generate

help: ## List the targets
	@echo "Usage: make TARGET [VAR=value]"
	@echo
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN { FS = ":.*## " } { printf "  %-8s %s\n", $$1, $$2 }'
	@echo
	@echo "Variables: ARGS (extra arguments for 'run'), FUZZTIME (per fuzz target, default 10s),"
	@echo "           TRACE (bench-placement's openb trace, default ../shared/traces/openb),"
	@echo "           FLEET_WINDOW (bench-fleet's measurement per phase, default 30s)"

deps: ## Install everything Baton and its tests need (apt packages, CRIU 4.x, staticcheck); as root
	bash scripts/install-deps.sh

build: ## Build bin/baton and, next to it, the fence drivers bin/baton-fence-{agent,ipmi,process}
	go build -o $(dir $(BIN)) ./cmd/baton $(FENCE_DRIVERS)

test: export BATON_BIN := $(CURDIR)/$(BIN)
test: deps build ## Run all tests (race detector) with BATON_BIN pointing at bin/baton
	go test -race -count=1 -timeout 20m ./...

run: deps build ## Run a local development cluster: ./bin/baton dev $(ARGS)
	./$(BIN) dev $(ARGS)

lint: ## gofmt (must print nothing), go vet, staticcheck
	@command -v staticcheck >/dev/null || { echo "staticcheck not found: run 'make deps'" >&2; exit 1; }
	@echo "gofmt -l"; \
	out=$$(find . -name '*.go' -not -path './.*' -not -path './bin/*' -not -path '*/testdata/*' -not -path './vendor/*' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting (run gofmt -w):" >&2; echo "$$out" >&2; exit 1; fi
	go vet ./...
	staticcheck ./...

bench: ## Placement decisions/s at 100/1,000/5,000 nodes and the server's cost per heartbeat, with baselines
	@mkdir -p bin
	go test -run '^$$' -bench . -benchmem -cpu 1 ./placement/ ./scheduler/ | tee bin/bench.txt
	@awk -f scripts/bench-table.awk bin/bench.txt

# The openb trace lives outside the repository (read-only, research use).
TRACE    ?= $(CURDIR)/../shared/traces/openb

bench-placement: ## Replay the openb trace (bin-pack, spread vs random-fit, best-fit) and decisions/s at 5,000 nodes vs the naive placer; TRACE=dir
	@mkdir -p bin
	go test -run '^$$' -bench Replay -cpu 1 ./placement/replay/ -args -trace '$(TRACE)' | tee bin/bench-placement.txt
	go test -run '^$$' -bench 'Place/nodes=5000' -benchmem -cpu 1 ./placement/ | tee -a bin/bench-placement.txt
	@awk -f scripts/bench-table.awk bin/bench-placement.txt

FLEET_WINDOW ?= 30s

bench-fleet: export BATON_BIN := $(CURDIR)/$(BIN)
bench-fleet: build ## 1,000 simulated agents heartbeating at 1 Hz into one real server process: its CPU (share of a core) and memory, idle as baseline; FLEET_WINDOW per phase (default 30s)
	@mkdir -p bin
	go test -run '^$$' -bench Fleet -benchtime 1x -cpu 1 -timeout 15m ./integration/ -args -fleet.window $(FLEET_WINDOW) | tee bin/bench-fleet.txt
	@awk -f scripts/bench-table.awk bin/bench-fleet.txt

bench-migrate: ## Stop-copy and post-copy migration vs plain CRIU (dump, cp, restore): frozen and total time at 64/256 MiB (BIG=1 adds 1 GiB)
	go test -run '^$$' -bench Migrate -benchtime 4x -timeout 15m ./migrate/criu $(if $(BIG),-args -migrate.big)

bench-failover: export BATON_BIN := $(CURDIR)/$(BIN)
bench-failover: build ## Node killed → its group running elsewhere: p50/p99 over RUNS (default 20), probe detection vs heartbeat timeout
	BATON_FAILOVER_RUNS=$(or $(RUNS),20) go test -run '^$$' -bench '^BenchmarkFailover$$' -benchtime 1x -timeout 60m ./integration/

bench-failover-load: export BATON_BIN := $(CURDIR)/$(BIN)
bench-failover-load: build ## No false failover while every CPU is saturated for DURATION (default 10m)
	BATON_LOAD_DURATION=$(or $(DURATION),10m) go test -run '^$$' -bench '^BenchmarkNoFalseFailoverUnderLoad$$' -benchtime 1x -timeout 90m ./integration/

fuzz: ## Run every Fuzz* target in the repo for FUZZTIME each (default 10s)
	@dirs=$$(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^\./\.' | xargs -r -n1 dirname | sort -u); \
	if [ -z "$$dirs" ]; then echo "no fuzz targets found"; exit 0; fi; \
	n=0; \
	for d in $$dirs; do \
		for f in $$(go test -list '^Fuzz' "$$d" | grep -E '^Fuzz'); do \
			echo "== $$d $$f ($(FUZZTIME))"; \
			go test -run '^$$' -fuzz "^$$f\$$" -fuzztime '$(FUZZTIME)' "$$d"; \
			n=$$((n + 1)); \
		done; \
	done; \
	echo "fuzzed $$n target(s) for $(FUZZTIME) each"

# Code generators, pinned to the versions compatible with go.mod's grpc (v1.61) and protobuf.
PROTOC_GEN_GO_VERSION      := v1.36.11
PROTOC_GEN_GO_GRPC_VERSION := v1.3.0

generate: ## Regenerate committed generated code (fence plugin protobuf/gRPC); needs protoc (make deps)
	@command -v protoc >/dev/null || { echo "protoc not found: run 'make deps'" >&2; exit 1; }
	cd / && GOFLAGS=-buildvcs=false go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	cd / && GOFLAGS=-buildvcs=false go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	protoc --proto_path=plugins/fence/proto \
		--go_out=paths=source_relative:plugins/fence/proto \
		--go-grpc_out=paths=source_relative:plugins/fence/proto \
		plugins/fence/proto/fence.proto

clean: ## Remove build outputs (bin/) and Go's test cache
	rm -rf bin/
	go clean -testcache
