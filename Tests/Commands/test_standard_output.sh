#!/usr/bin/env bash
# `--output -` end to end, through the built commands (a test in the test process cannot own its
# standard output): the JSON alone on standard output, the report on standard error.
# Usage: Tests/Commands/test_standard_output.sh BIN_DIR   (the folder `swift build` wrote)
set -euo pipefail
bin=$1
fixtures=Tests/AttentionModelsTests/Fixtures
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

fail() { echo "test_standard_output: $*" >&2; exit 1; }

"$bin/attention-embed" --model "$fixtures/tiny-bert" --output - "Hello world" "A second one" >"$out" 2>"$err"
[ "$(wc -l <"$out")" -eq 1 ] || fail "attention-embed --output -: expected one line of JSON on standard output"
grep -q '^\[{"embedding":\[' "$out" || fail "attention-embed --output -: standard output is not the JSON array"
grep -q 'cosine similarity' "$err" || fail "attention-embed --output -: the report is not on standard error"

"$bin/attention-generate" --model "$fixtures/tiny-llama" --prompt-ids 36,81,11,2,99 --max-new-tokens 12 \
    --output - >"$out" 2>"$err"
grep -qx '{"generated_ids":\[58,89,23,59,2,98,7,8,76,11,1,103\],"last_logits":\[.*\]}' "$out" \
    || fail "attention-generate --output -: standard output is not the JSON document"
grep -qx '58,89,23,59,2,98,7,8,76,11,1,103' "$err" || fail "attention-generate --output -: the ids are not on standard error"
[ ! -e ./- ] || fail "a file named - was written"
echo "test_standard_output: ok"
