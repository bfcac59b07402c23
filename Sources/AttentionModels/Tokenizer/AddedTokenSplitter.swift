/// Finds added tokens in a text as the `tokenizers` library does: the leftmost match, the longest
/// of those starting there, then the next match after it. A single-word token between word
/// characters is passed over (the search still goes on after it); a token that strips whitespace
/// takes the whitespace beside it, back to the previous token at most.
struct AddedTokenSplitter: Sendable {
    /// A part of the text: a stretch without tokens, or a token's id.
    enum Segment {
        case text(ArraySlice<Unicode.Scalar>)
        case token(Int)
    }

    private struct Pattern: Sendable {
        var scalars: [Unicode.Scalar]
        var token: ByteLevelBPETokenizer.AddedToken
    }

    /// The patterns by their first scalar, longest first.
    private let patterns: [Unicode.Scalar: [Pattern]]

    /// A splitter matching each token of `tokens` as `spelling` spells it (its content, or the
    /// normalised content).
    init(_ tokens: [ByteLevelBPETokenizer.AddedToken], spelling: (String) -> [Unicode.Scalar]) {
        var patterns: [Unicode.Scalar: [Pattern]] = [:]
        for token in tokens {
            let scalars = spelling(token.content)
            if let first = scalars.first { patterns[first, default: []].append(Pattern(scalars: scalars, token: token)) }
        }
        self.patterns = patterns.mapValues { candidates in
            candidates.enumerated().sorted {
                $0.element.scalars.count != $1.element.scalars.count
                    ? $0.element.scalars.count > $1.element.scalars.count : $0.offset < $1.offset
            }.map(\.element)
        }
    }

    /// Calls `body` with the parts of `text` in order; no text part is empty.
    func split(_ text: ArraySlice<Unicode.Scalar>, _ body: (Segment) -> Void) {
        var segmentStart = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            guard let pattern = longestMatch(in: text, at: index) else {
                index += 1
                continue
            }
            var start = index
            var stop = index + pattern.scalars.count
            index = stop
            let token = pattern.token
            if token.isSingleWord {
                let wordBefore = start > text.startIndex && Self.isWordScalar(text[start - 1])
                let wordAfter = stop < text.endIndex && Self.isWordScalar(text[stop])
                if wordBefore || wordAfter { continue }
            }
            if token.stripsLeft {
                while start > segmentStart && text[start - 1].properties.isWhitespace { start -= 1 }
            }
            if token.stripsRight {
                while stop < text.endIndex && text[stop].properties.isWhitespace { stop += 1 }
                index = stop
            }
            if segmentStart < start { body(.text(text[segmentStart..<start])) }
            body(.token(token.id))
            segmentStart = stop
        }
        if segmentStart < text.endIndex { body(.text(text[segmentStart...])) }
    }

    private func longestMatch(in text: ArraySlice<Unicode.Scalar>, at index: Int) -> Pattern? {
        patterns[text[index]]?.first { pattern in
            pattern.scalars.count <= text.endIndex - index
                && text[index..<(index + pattern.scalars.count)].elementsEqual(pattern.scalars)
        }
    }

    /// A word character of the Rust `regex` crate (`\w`): alphabetic, a mark, a decimal digit,
    /// connector punctuation or a join control.
    private static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}
