#!/usr/bin/env bash
# test_openmp_fallback.sh: the Makefile's choice of threads when the OpenMP runtime is missing (no
# libomp-dev for clang, say): a missing runtime is simulated by pointing OMP_SEARCH at an empty
# folder, a present one by a folder holding a (dummy) runtime file, and `make -n` shows the commands
# the build would run without running them. Asserts, for each of clang and gcc that is installed:
#   - runtime missing:                 one note naming the POSIX-threads variant, no -fopenmp anywhere;
#   - runtime present:                 -fopenmp on every compile and link, no note;
#   - missing, but OPENMP=-fopenmp:    the caller's choice kept (-fopenmp, no note);
#   - missing, and OPENMP= already:    no note (nothing to say).
# Quick (no compiler runs but --version and -print-search-dirs) and needs no root. Last line:
# "N passed, N failed"; exit status non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
make=${MAKE:-make}
# Run from a recipe (make test-c under make test-threads, say), the caller's overrides (OPENMP=,
# CC=...) would reach these dry runs through MAKEFLAGS or the environment: each sets its own.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES OPENMP OMP_SEARCH CC
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/empty" "$tmp/present"
passed=0 failed=0

check() { # name, condition result (0 = holds)
    if [ "$2" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $1"; fi
}

# What `make -n all` prints (notes, then the commands it would run) with the given arguments.
dry_run() { "$make" --no-print-directory -n BUILD="$tmp/build" "$@" all 2>&1; }

for cc in clang gcc; do
    command -v "$cc" >/dev/null || { echo "($cc not installed: skipped)"; continue; }
    case $("$cc" --version 2>/dev/null | head -n 1) in *clang*) runtime=libomp ;; *) runtime=libgomp ;; esac
    : > "$tmp/present/$runtime.so"

    out=$(dry_run CC="$cc" OMP_SEARCH="$tmp/empty")
    notes=$(grep -c '^note: .*POSIX-threads variant (OPENMP=)' <<<"$out")
    check "$cc, runtime missing: one note (got $notes)" "$([ "$notes" = 1 ]; echo $?)"
    check "$cc, runtime missing: no -fopenmp in the commands" \
        "$(! grep -v '^note:' <<<"$out" | grep -q -- -fopenmp; echo $?)"
    check "$cc, runtime missing: the library is still built and linked" \
        "$(grep -q -- "-shared .*libattn.so" <<<"$out"; echo $?)"

    out=$(dry_run CC="$cc" OMP_SEARCH="$tmp/present")
    check "$cc, runtime present: no note" "$(! grep -q '^note:' <<<"$out"; echo $?)"
    commands=$(grep -cE "^$cc .*(-c |-shared)" <<<"$out")
    openmp=$(grep -E "^$cc .*(-c |-shared)" <<<"$out" | grep -c -- -fopenmp)
    check "$cc, runtime present: -fopenmp on all $commands compiles and the link (got $openmp)" \
        "$([ "$commands" -gt 0 ] && [ "$openmp" = "$commands" ]; echo $?)"

    out=$(dry_run CC="$cc" OMP_SEARCH="$tmp/empty" OPENMP=-fopenmp)
    check "$cc, OPENMP=-fopenmp given: kept, no note" \
        "$(! grep -q '^note:' <<<"$out" && grep -q -- "^$cc .*-fopenmp" <<<"$out"; echo $?)"
    out=$(dry_run CC="$cc" OMP_SEARCH="$tmp/empty" OPENMP=)
    check "$cc, OPENMP= given: no note" "$(! grep -q '^note:' <<<"$out"; echo $?)"
    rm -f "$tmp/present/$runtime.so"
done
echo "test_openmp_fallback: $passed passed, $failed failed"
[ "$failed" = 0 ]
