# leadpulse — the commands a developer needs. `make run` and `make test` are
# the two a newcomer types first (see README.md).
GO      ?= go
PKGS    ?= ./...
RULES   ?= examples/b2b-saas.yaml
TRAFFIC ?= examples/traffic/b2b.jsonl

.PHONY: run replay test deps vet lint bench bench-micro fuzz build clean

build:
	$(GO) build -o bin/leadpulse ./cmd/leadpulse

# `make run` starts `leadpulse dev`: an embedded Kafka-compatible broker on
# 127.0.0.1:9092, the pipeline with the example rules, demo traffic, and
# /metrics on 127.0.0.1:8080; alerts are printed as they fire. Ctrl-C stops.
run:
	$(GO) run ./cmd/leadpulse dev

# The offline path: the example rules' tests, then a replay of the bundled
# traffic (action JSON lines on stdout).
replay: build
	./bin/leadpulse rules test $(RULES)
	./bin/leadpulse replay --rules $(RULES) $(TRAFFIC)

# Installs missing test tools (redis-server, kcat, prometheus, chromium) when it can, then vets and
# runs every test with the race detector. With CI=true a missing tool fails
# the tests that need it instead of skipping them.
test: deps vet
	$(GO) test -race -count=1 $(PKGS)

deps:
	@./scripts/install-test-deps.sh

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	./bin/leadpulse rules check examples/*.yaml 2>/dev/null || $(GO) run ./cmd/leadpulse rules check examples/*.yaml

# A representative run of `leadpulse bench`, printed as a table: 300,000 keyed
# B2B events drained through the live pipeline (embedded broker, memory store)
# beside the raw consume ceiling, then open-loop phases at 5,000 and 20,000
# events/s, each long enough for 10,000 samples of both latencies (event →
# state applied, event → action read): about three minutes on a shared 2-core
# machine (2 min at 5,000/s, 30 s at 20,000/s). The simulated visitors come and
# go (bench --turnover, on by default), so the actions per event stay level and
# 10,000 actions come within the phase; BENCH_FLAGS=--no-turnover turns it off.
# BENCH_FLAGS adds flags, e.g. BENCH_FLAGS='--redis 127.0.0.1:6379 --json';
# BENCH_SAMPLES=0 gives 5 s phases. The run uses the garbage collector setting
# the deployment runs with (GOGC=400, deploy/kubernetes/base/deployment.yaml),
# so that it measures leadpulse as deployed; BENCH_GOGC=100 gives Go's default
# (about 1 CPU µs per drained event more; the result prints its GOGC).
BENCH_RATES ?= 5000,20000
BENCH_SAMPLES ?= 10000
BENCH_FLAGS ?=
BENCH_GOGC ?= 400
bench:
	GOGC=$(BENCH_GOGC) $(GO) run ./cmd/leadpulse bench --rate $(BENCH_RATES) --samples $(BENCH_SAMPLES) $(BENCH_FLAGS)

# Engine micro-benchmarks (ns/event, allocs/event) and the 1M-event replay.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./engine/ ./rules/ ./event/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 30s ./event/
	$(GO) test -run '^$$' -fuzz '^FuzzScannerMatchesReference$$' -fuzztime 60s ./event/
	$(GO) test -run '^$$' -fuzz '^FuzzParseTime$$' -fuzztime 15s ./event/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./rules/

clean:
	rm -rf bin
