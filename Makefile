# weft: a thin front over CMake and scripts/ for the everyday commands.
#   make deps          install missing Debian packages (root; apt only if needed)
#   make build         configure build/ (Release -O2 -g, -Werror) and build it
#   make test          deps, then plain, ASan+UBSan and TSan builds, each + ctest, then
#                      every fuzz target for FUZZ_TEST_SECONDS (5) each
#   make test-plain | test-asan | test-tsan     one configuration only
#   make demo          build, then run the levels example (under mpirun -n 3 when the
#                      mpi backend is built; writes build/demo/levels.json)
#   make fuzz          the libFuzzer targets (fuzz/), FUZZ_SECONDS (300) each, in build-fuzz/
#   make bench         build with the benchmarks and run them (build/bench/results.json)
#   make soak          the fault soak: processes + threads, ~1% injected faults, 2x CPU
#                      hog, for WEFT_SOAK_SECONDS (default 600); SOAK_ARGS="--seed 7"
#                      passes options on (scripts/soak.sh, docs/soak.md)
#   make install       cmake --install build (PREFIX=/usr/local)
#   make format-check  clang-format --dry-run -Werror over the sources
#   make clean         remove the build directories
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := build

BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX  ?= /usr/local
FUZZ_SECONDS ?= 300
FUZZ_TEST_SECONDS ?= 5
CMAKE   ?= cmake
CONFIGURE_FLAGS = -DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS_RELEASE=-O2 -g" \
                  -DWEFT_WERROR=ON -DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_EXAMPLES=ON -DWEFT_WITH_MPI=ON

.PHONY: all deps deps-bench configure build test test-plain test-asan test-tsan demo bench \
        install format-check clean soak fuzz

all: build

deps:
	scripts/install-deps.sh

deps-bench:
	scripts/install-deps.sh --bench

configure:
	$(CMAKE) -S . -B $(BUILD) $(CONFIGURE_FLAGS) $(CMAKE_ARGS)

build: configure
	$(CMAKE) --build $(BUILD) -j $(JOBS)

test: deps
	JOBS=$(JOBS) scripts/run-tests.sh plain asan tsan
	JOBS=$(JOBS) scripts/run-fuzz.sh $(FUZZ_TEST_SECONDS)

fuzz: deps
	JOBS=$(JOBS) scripts/run-fuzz.sh $(FUZZ_SECONDS)

test-plain test-asan test-tsan:
	JOBS=$(JOBS) scripts/run-tests.sh $(@:test-%=%)

demo: deps
	$(MAKE) --no-print-directory build
	scripts/run-demo.sh $(BUILD)

bench: deps-bench
	$(CMAKE) -S . -B $(BUILD) $(CONFIGURE_FLAGS) -DWEFT_BUILD_BENCH=ON $(CMAKE_ARGS)
	$(CMAKE) --build $(BUILD) -j $(JOBS)
	scripts/run-bench.sh $(BUILD)

soak: configure
	BUILD=$(BUILD) scripts/soak.sh $(SOAK_ARGS)

install: build
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

format-check:
	scripts/format-check.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz
	@if [ "$(BUILD)" != build ]; then rm -rf "$(BUILD)"; fi
