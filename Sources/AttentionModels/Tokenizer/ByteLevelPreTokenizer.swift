/// The pre-tokenizer of a byte-level tokenizer, as `tokenizer.json` describes it: `ByteLevel`
/// alone (GPT-2), or last in a `Sequence` after `Split` (Llama 3, Qwen2) or `Digits` (SmolLM).
///
/// Each step cuts every piece the previous steps left into smaller ones; `ByteLevel` then puts a
/// space before each piece that does not start with one (`add_prefix_space`), cuts it with
/// GPT-2's pattern (`use_regex`), and hands on the UTF-8 bytes of each pre-token.
struct ByteLevelPreTokenizer: Sendable, Equatable {
    /// A step before `ByteLevel`.
    enum Step: Sendable, Equatable {
        /// `Split` on a pattern, each match a piece of its own (`"behavior": "Isolated"`, not inverted).
        case split(PreTokenizerPattern)
        /// `Digits` with `individual_digits`: each scalar of an N* category a piece of its own
        /// (Rust's `char::is_numeric`, on the current Unicode tables, unlike the patterns').
        case individualDigits
    }

    /// The steps before `ByteLevel`, in order.
    var steps: [Step]
    /// `ByteLevel`'s `add_prefix_space`.
    var addsPrefixSpace: Bool
    /// `ByteLevel`'s `use_regex`: GPT-2's pattern after the steps.
    var usesGPT2Pattern: Bool
    /// `ByteLevel`'s `trim_offsets`, which changes offsets only (kept to write it back).
    var trimsOffsets: Bool

    /// Calls `body` with the UTF-8 bytes of each pre-token of `text`, in order (none for an
    /// empty text).
    func forEachPreToken(of text: [Unicode.Scalar], _ body: ([UInt8]) -> Void) {
        if text.isEmpty { return }
        let classes = text.map(PreTokenizerPattern.ScalarClass.init)
        var pieces = [0..<text.count]
        for step in steps {
            var cut: [Range<Int>] = []
            for piece in pieces { Self.cut(piece, by: step, scalars: text, classes: classes) { cut.append($0) } }
            pieces = cut
        }
        for piece in pieces {
            if addsPrefixSpace && text[piece.lowerBound] != " " {
                let prefixed = [" "] + text[piece]
                finish(0..<prefixed.count, of: prefixed, classes: [.space] + classes[piece], body)
            } else {
                finish(piece, of: text, classes: classes, body)
            }
        }
    }

    /// `ByteLevel`'s cut and bytes.
    private func finish(
        _ piece: Range<Int>, of scalars: [Unicode.Scalar], classes: [PreTokenizerPattern.ScalarClass],
        _ body: ([UInt8]) -> Void
    ) {
        guard usesGPT2Pattern else { return body(Self.utf8(scalars[piece])) }
        PreTokenizerPattern.gpt2.forEachMatch(in: piece, of: scalars, classes: classes) { body(Self.utf8(scalars[$0])) }
    }

    /// The pieces `step` cuts `piece` into.
    private static func cut(
        _ piece: Range<Int>, by step: Step, scalars: [Unicode.Scalar], classes: [PreTokenizerPattern.ScalarClass],
        _ body: (Range<Int>) -> Void
    ) {
        switch step {
        case let .split(pattern):
            pattern.forEachMatch(in: piece, of: scalars, classes: classes, body)
        case .individualDigits:
            var start = piece.lowerBound
            for index in piece where isNumeric(scalars[index]) {
                if start < index { body(start..<index) }
                body(index..<(index + 1))
                start = index + 1
            }
            if start < piece.upperBound { body(start..<piece.upperBound) }
        }
    }

    /// Whether `scalar` is in an N* general category.
    private static func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return ("0"..."9").contains(scalar) }
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// The UTF-8 bytes of `scalars`.
    private static func utf8(_ scalars: ArraySlice<Unicode.Scalar>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(scalars.count)
        for scalar in scalars { UTF8.encode(scalar) { bytes.append($0) } }
        return bytes
    }
}
