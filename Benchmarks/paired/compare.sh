#!/usr/bin/env bash
# compare.sh "attn L D CAUSAL THREADS" | "mm N THREADS"  ROUNDS  NAME1 NAME2 ...
#
# Links the builds made by build_variant.sh into one program (paired.c) and times them call by
# call, alternating, on the same inputs: prints each one's best and median GFLOP/s and the median
# of its per-round speed ratio to NAME1. For example:
#   compare.sh "attn 2048 64 0 1" 12 base tiles8
#   compare.sh "mm 1024 2" 12 base old
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
problem="$1"
rounds="$2"
shift 2
out="$here/../../build/paired"
list=""
objects=()
for name in "$@"; do
    list="$list X($name)"
    objects+=("$out/$name.o")
done
${CC:-cc} -O2 -fopenmp -I"$here/../../CKernels/include" "-DVARIANT_LIST=$list" "$here/paired.c" "${objects[@]}" \
    -lm -o "$out/paired"
# shellcheck disable=SC2086
"$out/paired" "$rounds" $problem
