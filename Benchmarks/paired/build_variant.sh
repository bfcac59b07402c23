#!/usr/bin/env bash
# build_variant.sh NAME [EXTRA_CFLAGS] [SOURCE_DIR]
#
# Compiles CKernels/ of SOURCE_DIR (default: this checkout) into one relocatable object,
# build/paired/NAME.o, in which every symbol the library keeps internal is made local and every
# public one is renamed NAME_<symbol>, so that several builds link into one program (compare.sh).
# For example: build_variant.sh base; build_variant.sh tiles8 -DFUSED_MAX_TILES=8;
# build_variant.sh old "" /tmp/old-checkout. OPENMP= (empty) builds the POSIX-threads pool instead of
# OpenMP (CKernels/parallel.c), e.g. to time its per-call overhead. Pair such builds only with each
# other: after every call of an OpenMP build its runtime's threads keep spinning, and took a core
# from the pool build's next call (L = 256 attention on 2 threads timed at 0.49-0.57x its speed alone).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
name="$1"
flags="${2:-}"
src="$(cd "${3:-$here/../..}" && pwd)"
out="$here/../../build/paired"
work="$out/$name.d"
rm -rf "$work"
mkdir -p "$work"
for f in "$src"/CKernels/*.c; do
    # shellcheck disable=SC2086
    ${CC:-cc} -O3 $flags -std=gnu11 -fPIC ${OPENMP--fopenmp} -ffp-contract=fast -fvisibility=hidden \
        -I"$src/CKernels/include" -I"$src/CKernels" -c "$f" -o "$work/$(basename "$f" .c).o"
done
ld -r -o "$work/all.o" "$work"/*.o
objcopy --localize-hidden "$work/all.o"
renames=()
for symbol in $(nm -g --defined-only "$work/all.o" | awk '{print $3}'); do
    renames+=(--redefine-sym "$symbol=${name}_$symbol")
done
objcopy "${renames[@]}" "$work/all.o" "$out/$name.o"
echo "built $out/$name.o"
