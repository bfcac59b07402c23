#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time and prints a summary line (make fuzz calls it).
#
#   Tests/Fuzz/run_fuzz.sh NAME BINARY SECONDS WORKDIR SEEDS [libFuzzer flags...]
#
# The target starts from WORKDIR/corpus/NAME (kept between runs, where new inputs are written) plus
# the repository's seed corpus SEEDS (only read). Crashes go to WORKDIR/artifacts/NAME/; the full
# log to WORKDIR/NAME.log. A crash, leak, timeout or sanitizer report makes this exit non-zero
# after printing the end of the log; the crashing input then belongs in SEEDS as a regression
# (named regression-*), with its fix.
set -uo pipefail
name=$1 bin=$2 secs=$3 work=$4 seeds=$5
shift 5
mkdir -p "$work/corpus/$name" "$work/artifacts/$name"
log="$work/$name.log"
FUZZ_STATS=1 "$bin" "$work/corpus/$name" "$seeds" -max_total_time="$secs" -timeout=25 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$name/" "$@" >"$log" 2>&1
status=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
corpus=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$done_line")
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
seeds_n=$(find "$seeds" -type f | wc -l)
if [ "$status" -ne 0 ]; then
    tail -n 80 "$log"
    echo "FUZZ | $name | FAILED (exit $status) after ${execs:-?} executions; input saved in $work/artifacts/$name/"
    exit "$status"
fi
echo "FUZZ | $name | ${execs:-?} executions in ${secs} s | corpus ${corpus:-?} (inputs/bytes; $seeds_n seeds) | coverage ${cov:-?} | no crash"
grep -E '^fuzz_attention stats|KNOWN BUG' "$log" | sed 's/^/FUZZ |   /' | sort -u
exit 0
