# swift-attention: the C library (libattn), its tests and benchmarks, and the Swift package's tests.
#
#   make              build/libattn.a and build/libattn.so
#   make test         C tests, then `swift test`
#   make bench        the fused-vs-unfused benchmark (see README)
#   make bench-peers  the fused kernel against PyTorch, ONNX Runtime, JAX and numpy (Benchmarks/peers)
#   make bench-chart  time and memory against length, fused vs unfused, drawn into docs/bench.svg
#   make install PREFIX=/usr/local
#
# CC defaults to cc; gcc (libgomp) and clang (libomp) both work. Kernels for every instruction set
# are always compiled; the CPU picks one at run time, so no -march flag is ever passed.

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
CFLAGS  ?= -O3
# Both compilers fuse a*b+c only when allowed to; the kernels rely on FMA for speed, not for results.
ATTN_CFLAGS = -std=gnu11 -fPIC -fopenmp -ffp-contract=fast -fvisibility=hidden -Wall -Wextra \
              -ICKernels/include -ICKernels
LDLIBS  = -lm
# clang's -fopenmp links libomp, whose unversioned libomp.so Debian keeps in the LLVM folder only.
ifneq ($(findstring clang,$(shell $(CC) --version 2>/dev/null | head -n 1)),)
OMP_LIBDIR := $(lastword $(sort $(wildcard /usr/lib/llvm-*/lib)))
ifneq ($(OMP_LIBDIR),)
LDFLAGS += -L$(OMP_LIBDIR)
endif
endif

SOURCES  = $(wildcard CKernels/*.c)
HEADERS  = $(wildcard CKernels/*.h CKernels/include/*.h)
OBJECTS  = $(SOURCES:CKernels/%.c=$(BUILD)/obj/%.o)
TESTS    = $(patsubst Tests/CKernelsTests/%.c,$(BUILD)/tests/%,$(wildcard Tests/CKernelsTests/test_*.c))
SWIFT   ?= swift

.PHONY: all test test-c bench bench-peers bench-chart install clean deps
BENCH_ARGS ?=

all: $(BUILD)/libattn.a $(BUILD)/libattn.so

$(BUILD)/obj/%.o: CKernels/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ATTN_CFLAGS) -c $< -o $@

$(BUILD)/libattn.a: $(OBJECTS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libattn.so: $(OBJECTS)
	$(CC) -shared $(LDFLAGS) -fopenmp -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: Tests/CKernelsTests/%.c $(wildcard Tests/CKernelsTests/*.h) $(BUILD)/libattn.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=gnu11 -fopenmp -Wall -Wextra -ICKernels/include $(LDFLAGS) $< $(BUILD)/libattn.a $(LDLIBS) -o $@

# libomp-dev: the OpenMP runtime SwiftPM's clang links on Linux (gcc brings its own libgomp).
deps:
	@bash .ci/install-deps

test: deps test-c
	$(SWIFT) test

# The example is built against the installed-style interface only (attn.h and the library).
$(BUILD)/examples/%: examples/%.c CKernels/include/attn.h $(BUILD)/libattn.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c99 -fopenmp -Wall -Wextra -ICKernels/include $(LDFLAGS) $< $(BUILD)/libattn.a $(LDLIBS) -o $@

test-c: $(TESTS) $(BUILD)/examples/attention
	@for t in $(abspath $(TESTS) $(BUILD)/examples/attention); do echo "== $$t"; $$t || exit 1; done

$(BUILD)/attn_bench: Benchmarks/attn_bench.c CKernels/include/attn.h $(BUILD)/libattn.a
	$(CC) $(CFLAGS) -std=gnu11 -fopenmp -ffp-contract=fast -Wall -Wextra -ICKernels/include $(LDFLAGS) $< $(BUILD)/libattn.a $(LDLIBS) -o $@

# The benchmark table; e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--lengths 4096 --format csv".
bench: deps $(BUILD)/attn_bench
	$(abspath $(BUILD))/attn_bench $(BENCH_ARGS)

# Peers in a virtual environment outside the repository; what is missing is installed with pip.
# e.g. make bench-peers PEERS_ARGS="--lengths 1024 --dims 64 --threads 2" PEERS_VENV=/path/to/venv
PEERS_VENV   ?= $(HOME)/.cache/swift-attention-venv
PEERS_ARGS   ?=
PEERS_PYTHON ?= python3
bench-peers: deps $(BUILD)/attn_bench
	@test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	@$(PEERS_VENV)/bin/python -c 'import torch, jax, onnx, onnxruntime, numpy, threadpoolctl' 2>/dev/null || \
	    $(PEERS_VENV)/bin/python -m pip install torch jax onnx onnxruntime numpy threadpoolctl
	$(PEERS_VENV)/bin/python Benchmarks/peers/bench_peers.py --attn-bench $(abspath $(BUILD))/attn_bench $(PEERS_ARGS)

# The chart: attn_bench's CSV over the lengths, drawn by Benchmarks/plot_bench.py (standard library).
CHART_ARGS ?= --lengths 256,512,1024,2048,4096,8192 --dims 64,128 --causal 0,1 --threads 2
bench-chart: deps $(BUILD)/attn_bench
	$(abspath $(BUILD))/attn_bench --format csv $(CHART_ARGS) > $(BUILD)/bench.csv
	python3 Benchmarks/plot_bench.py $(BUILD)/bench.csv -o docs/bench.svg

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 CKernels/include/attn.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libattn.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libattn.so $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/.*ATTN_VERSION_STRING "\(.*\)"/\1/p' CKernels/include/attn.h)|' \
	    attn.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/attn.pc

clean:
	rm -rf $(BUILD)
