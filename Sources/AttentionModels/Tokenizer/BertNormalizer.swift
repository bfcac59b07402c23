import Foundation

/// BERT's text normalisation, as the `BertNormalizer` of a `tokenizer.json` (or the
/// `do_lower_case`, `tokenize_chinese_chars` and `strip_accents` of a `tokenizer_config.json`)
/// configures it. Applied in this order, to Unicode scalars (never to `Character`s, which are
/// grapheme clusters and would hide combining marks):
///
/// 1. ``cleanText``: NUL, U+FFFD and control, format and private-use characters are dropped;
///    every whitespace character becomes a space.
/// 2. ``handleChineseCharacters``: a space on each side of every CJK ideograph.
/// 3. ``stripAccents``: canonical decomposition (NFD), then non-spacing marks (Mn) dropped.
/// 4. ``lowercase``: each scalar's full lower-case mapping.
///
/// ```swift
/// let normalizer = BertNormalizer()               // the uncased BERT default
/// normalizer.normalize("Crème Brûlée\u{200B}!")    // "creme brulee!"
/// ```
public struct BertNormalizer: Sendable, Equatable, Hashable {
    /// Drop control characters and map whitespace to spaces.
    public var cleanText: Bool
    /// Surround CJK ideographs with spaces, so each becomes a word of its own.
    public var handleChineseCharacters: Bool
    /// Decompose (NFD) and drop non-spacing marks.
    public var stripAccents: Bool
    /// Map every scalar to its lower-case form.
    public var lowercase: Bool

    /// Creates a normaliser; `stripAccents: nil` follows `lowercase`, as in BERT's configuration.
    public init(
        cleanText: Bool = true, handleChineseCharacters: Bool = true, stripAccents: Bool? = nil,
        lowercase: Bool = true
    ) {
        self.cleanText = cleanText
        self.handleChineseCharacters = handleChineseCharacters
        self.stripAccents = stripAccents ?? lowercase
        self.lowercase = lowercase
    }

    /// The normalised text.
    public func normalize(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        result.append(contentsOf: normalizedScalars(text.unicodeScalars))
        return String(result)
    }

    /// The normalised scalars of `scalars`.
    func normalizedScalars(_ scalars: some Sequence<Unicode.Scalar>) -> [Unicode.Scalar] {
        let space: Unicode.Scalar = " "
        var output: [Unicode.Scalar] = []
        output.reserveCapacity(scalars.underestimatedCount)
        for scalar in scalars {
            if cleanText {
                if BertCharacterClass.isRemovedByCleaning(scalar) { continue }
                if BertCharacterClass.isWhitespace(scalar) {
                    output.append(space)
                    continue
                }
            }
            if handleChineseCharacters && BertCharacterClass.isChineseCharacter(scalar) {
                output.append(contentsOf: [space, scalar, space])
            } else {
                output.append(scalar)
            }
        }
        if stripAccents && output.contains(where: { !$0.isASCII }) {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: output)
            output = String(view).decomposedStringWithCanonicalMapping.unicodeScalars.filter {
                !BertCharacterClass.isNonspacingMark($0)
            }
        }
        if lowercase {
            var lowered: [Unicode.Scalar] = []
            lowered.reserveCapacity(output.count)
            for scalar in output {
                if scalar.isASCII {
                    let value = scalar.value
                    lowered.append(value >= 65 && value <= 90 ? Unicode.Scalar(UInt8(value + 32)) : scalar)
                } else {
                    lowered.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
                }
            }
            output = lowered
        }
        return output
    }
}
