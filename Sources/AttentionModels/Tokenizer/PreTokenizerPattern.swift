/// The regular expressions byte-level tokenizers cut text into pre-tokens with, matched by hand
/// over Unicode scalars as the `tokenizers` library's regex engine (Oniguruma) matches them: the
/// matches found one after the other from the start of the text, each the first alternative that
/// matches there (a greedy quantifier backing off only as far as the rest of the alternative
/// needs). Every scalar is in some alternative's class, so the matches cover the text.
///
/// The classes are Unicode properties: `\p{L}` the L* general categories, `\p{N}` the N* ones,
/// `\s` the White_Space property, as of Unicode 16.0, the version of the library's tables: a
/// scalar assigned later (Unicode 17.0's Sidetic letters, ...) is in none of them there, and is
/// taken as such here. Swift's tables agree with the library's on every code point
/// (`Tests/AttentionModelsTests/Fixtures/generate_bpe_fixtures.py --sweep`). `(?i:...)` folds
/// ASCII letters only (`'ſ` is not `'s` there).
enum PreTokenizerPattern: String, CaseIterable, Sendable {
    /// GPT-2's, which the `ByteLevel` pre-tokenizer applies when `use_regex` is true.
    case gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// Llama 3's, in a `Split` before `ByteLevel`: numbers in groups of up to three digits.
    case llama3 =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2's: Llama 3's with one digit per number.
    case qwen2 =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The Unicode version of the library's character tables.
    static let unicodeVersion = (major: 16, minor: 0)

    /// How the patterns see a scalar.
    enum ScalarClass: UInt8, Sendable {
        case letter, number, space, lineBreak, otherWhitespace, other

        init(_ scalar: Unicode.Scalar) {
            switch scalar.value {
            case 0x41...0x5A, 0x61...0x7A: self = .letter
            case 0x30...0x39: self = .number
            case 0x20: self = .space
            case 0x0A, 0x0D: self = .lineBreak
            case 0x09, 0x0B, 0x0C: self = .otherWhitespace
            case 0...0x7F: self = .other
            default:
                guard let age = scalar.properties.age, (age.major, age.minor) <= PreTokenizerPattern.unicodeVersion else {
                    self = .other
                    return
                }
                switch scalar.properties.generalCategory {
                case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
                    self = .letter
                case .decimalNumber, .letterNumber, .otherNumber:
                    self = .number
                default:
                    self = scalar.properties.isWhitespace ? .otherWhitespace : .other
                }
            }
        }

        /// `\s`.
        var isWhitespace: Bool { self == .space || self == .lineBreak || self == .otherWhitespace }
    }

    /// Calls `body` with the range of each match in `range` of `scalars` (whose classes are
    /// `classes`, index for index), in order.
    func forEachMatch(
        in range: Range<Int>, of scalars: [Unicode.Scalar], classes: [ScalarClass], _ body: (Range<Int>) -> Void
    ) {
        var start = range.lowerBound
        while start < range.upperBound {
            let end = matchEnd(from: start, before: range.upperBound, scalars: scalars, classes: classes)
            body(start..<end)
            start = end
        }
    }

    /// Where the match starting at `start` ends (`end` bounds the text).
    private func matchEnd(from start: Int, before end: Int, scalars: [Unicode.Scalar], classes: [ScalarClass]) -> Int {
        func run(of kind: ScalarClass, from index: Int) -> Int {
            var index = index
            while index < end && classes[index] == kind { index += 1 }
            return index
        }
        func classAt(_ index: Int) -> ScalarClass? { index < end ? classes[index] : nil }

        if let contractionEnd = contraction(at: start, before: end, scalars: scalars) { return contractionEnd }
        let current = classes[start]
        switch self {
        case .gpt2:
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`.
            let afterSpace = current == .space ? classAt(start + 1) : nil
            for kind in [ScalarClass.letter, .number, .other] {
                if current == kind { return run(of: kind, from: start) }
                if afterSpace == kind { return run(of: kind, from: start + 1) }
            }
        case .llama3, .qwen2:
            // `[^\r\n\p{L}\p{N}]?\p{L}+`.
            if current == .letter { return run(of: .letter, from: start) }
            if current != .lineBreak && current != .number && classAt(start + 1) == .letter {
                return run(of: .letter, from: start + 1)
            }
            // `\p{N}{1,3}` or `\p{N}`.
            if current == .number {
                return self == .qwen2 ? start + 1 : min(run(of: .number, from: start), start + 3)
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`.
            let symbolStart = current == .space && classAt(start + 1) == .other ? start + 1 : start
            if classes[symbolStart] == .other {
                return run(of: .lineBreak, from: run(of: .other, from: symbolStart))
            }
            // `\s*[\r\n]+`: up to the last line break of the whitespace.
            var index = start
            var lastLineBreak: Int?
            while index < end && classes[index].isWhitespace {
                if classes[index] == .lineBreak { lastLineBreak = index }
                index += 1
            }
            if let lastLineBreak { return lastLineBreak + 1 }
        }
        // `\s+(?!\S)|\s+`: the scalar at `start` is whitespace, every other class having matched above.
        var whitespaceEnd = start + 1
        while whitespaceEnd < end && classes[whitespaceEnd].isWhitespace { whitespaceEnd += 1 }
        return whitespaceEnd == end || whitespaceEnd - start == 1 ? whitespaceEnd : whitespaceEnd - 1
    }

    /// The end of `'s`, `'t`, `'re`, `'ve`, `'m`, `'ll` or `'d` at `start`, ASCII case folded
    /// except in GPT-2's pattern; `nil` when there is none.
    private func contraction(at start: Int, before end: Int, scalars: [Unicode.Scalar]) -> Int? {
        guard scalars[start] == "'" else { return nil }
        func letter(_ index: Int) -> Unicode.Scalar? {
            guard index < end else { return nil }
            let scalar = scalars[index]
            return self != .gpt2 && ("A"..."Z").contains(scalar) ? Unicode.Scalar(UInt8(scalar.value + 32)) : scalar
        }
        switch letter(start + 1) {
        case "s"?, "t"?, "m"?, "d"?: return start + 2
        case "r"?, "v"?: return letter(start + 2) == "e" ? start + 3 : nil
        case "l"?: return letter(start + 2) == "l" ? start + 3 : nil
        default: return nil
        }
    }
}
