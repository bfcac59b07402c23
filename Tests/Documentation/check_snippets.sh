#!/usr/bin/env bash
# Every Swift snippet of README.md and of the DocC catalogues compiles as a user would write it:
# each block on its own, with only the imports it shows, type-checked against the modules
# `swift build` wrote (so a missing `import Foundation` or an unknown name fails here). A block
# that starts with `// swift-tools-version` is a manifest: SwiftPM evaluates it. The blocks are
# run by Tests/*/DocumentationSnippetTests.swift, which also checks that each one appears there.
# The AttentionCommands catalogue is left to those tests: its symbols are `package`, which only
# code built by SwiftPM inside this package can see.
# Usage: Tests/Documentation/check_snippets.sh BIN_DIR   (the folder `swift build` wrote)
set -euo pipefail
bin=$1
swift=${SWIFT:-swift}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Writes each ```swift block of "$1" to "$work/<n>.swift"; prints the count.
extract() {
    awk -v dir="$work" -v base="$2" '
        /^```swift$/ { n++; file = sprintf("%s/%s-%02d.swift", dir, base, n); inside = 1; next }
        /^```/ && inside { inside = 0; close(file); next }
        inside { print > file }
    ' "$1"
}

documents=(README.md Sources/Attention/Documentation.docc/*.md Sources/AttentionModels/Documentation.docc/*.md)
for document in "${documents[@]}"; do
    extract "$document" "$(echo "$document" | tr '/.' '__')"
done

checked=0
for snippet in "$work"/*.swift; do
    name=$(basename "$snippet" .swift)
    if head -1 "$snippet" | grep -q '^// swift-tools-version'; then
        package="$work/package-$name"
        mkdir -p "$package"
        cp "$snippet" "$package/Package.swift"
        "$swift" package --package-path "$package" dump-package >/dev/null 2>"$work/error" \
            || { cat "$work/error" >&2; echo "check_snippets: the manifest in $name does not evaluate" >&2; exit 1; }
    else
        swiftc -typecheck -I "$bin/Modules" -Xcc -fmodule-map-file="$bin/CAttention.build/module.modulemap" \
            "$snippet" 2>"$work/error" \
            || { cat "$work/error" >&2; echo "check_snippets: the snippet $name does not compile" >&2; exit 1; }
    fi
    checked=$((checked + 1))
done
echo "check_snippets: $checked snippets compile"
