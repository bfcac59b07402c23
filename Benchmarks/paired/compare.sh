#!/usr/bin/env bash
# compare.sh "attn L D CAUSAL THREADS" | "mm N THREADS" | "mmk M K N THREADS BT" | "decode DTYPE THREADS"  ROUNDS  NAME1 NAME2 ...
#
# Links the builds made by build_variant.sh into one program (paired.c) and times them call by
# call, alternating, on the same inputs: prints each one's best and median GFLOP/s and the median
# of its per-round speed ratio to NAME1. For example:
#   compare.sh "attn 2048 64 0 1" 12 base tiles8
#   compare.sh "mm 1024 2" 12 base old
#   compare.sh "mmk 8 384 1536 2 1" 50 base packed     (8 rows, a (1536, 384) Linear weight)
#   PAIRED_DTYPES=f32,bf16,f16 compare.sh "mmk 1 896 896 1 1" 50 base   (weight types, one build)
# In mm mode PAIRED_CBLAS=libopenblas.so adds OpenBLAS's sgemm as the last contender (paired.c).
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
${CC:-cc} -O3 -ffp-contract=fast -fopenmp -I"$here/../../CKernels/include" "-DVARIANT_LIST=$list" "$here/paired.c" "${objects[@]}" \
    -lm -ldl -o "$out/paired"
# shellcheck disable=SC2086
set -- $problem
if [ "$1" = mm ] && [ -n "${PAIRED_CBLAS:-}" ]; then
    # Both libraries park their idle threads at once: a thread of one left spinning after its call
    # takes a core from the other's next call (measured: OpenBLAS's default spin cost attn_matmul
    # 20 % at N = 2048 on 2 threads).
    export OPENBLAS_NUM_THREADS="$3" OPENBLAS_THREAD_TIMEOUT=4 OMP_WAIT_POLICY=passive
fi
# shellcheck disable=SC2086
"$out/paired" "$rounds" $problem
