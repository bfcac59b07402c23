#!/usr/bin/env bash
# `--output -` end to end, through the built commands (a test in the test process cannot own its
# standard output): the JSON alone on standard output, the report on standard error.
# Usage: Tests/Commands/test_standard_output.sh BIN_DIR   (the folder `swift build` wrote)
set -euo pipefail
bin=$1
fixtures=Tests/AttentionModelsTests/Fixtures
out=$(mktemp) err=$(mktemp) model=$(mktemp -d)
trap 'rm -rf "$out" "$err" "$model"' EXIT

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
# --prompt: the tiny Llama with the plain-bytes tokenizer (ids 0...255, one per byte), the text
# printed as it comes, on standard output, or on standard error with --output -.
ln -s "$PWD/$fixtures/tiny-llama/config.json" "$PWD/$fixtures/tiny-llama/model.safetensors" "$model/"
cp "$fixtures/bpe-plain-bytes/tokenizer.json" "$model/"
"$bin/attention-generate" --model "$model" --prompt "Hi there" --max-new-tokens 12 >"$out" 2>"$err"
[ "$(head -c 8 "$out" | od -An -c | tr -d ' ')" = 'f001002<YYh002' ] \
    || fail "attention-generate --prompt: standard output does not start with the generated text"
grep -q '^prefill: ' "$err" || fail "attention-generate --prompt: the rates are not on standard error"
"$bin/attention-generate" --model "$model" --prompt "Hi there" --max-new-tokens 12 --output - >"$out" 2>"$err"
grep -qx '{"generated_ids":\[102,1,2,60,89,89,104,2,59,104,4,89\],"last_logits":\[.*\]}' "$out" \
    || fail "attention-generate --prompt --output -: standard output is not the JSON document"
grep -q '<YYh' "$err" || fail "attention-generate --prompt --output -: the text is not on standard error"
[ ! -e ./- ] || fail "a file named - was written"
echo "test_standard_output: ok"
