/// BERT's tokenizer: ``BertNormalizer``, a split at whitespace and around punctuation, then
/// greedy longest-match WordPiece against a vocabulary, with `[CLS]` and `[SEP]` around the result.
///
/// The ids equal those of the `tokenizers` library (the fast tokenizer of `transformers`) for
/// any text, which includes its details: special tokens written in the text (`"[SEP]"`) are
/// recognised before normalisation; a word longer than ``maxInputCharactersPerWord`` scalars,
/// or one with a part no vocabulary entry matches, becomes a single unknown token.
///
/// ```swift
/// let tokenizer = try WordPieceTokenizer(contentsOf: URL(fileURLWithPath: "models/all-MiniLM-L6-v2"))
/// tokenizer.tokenize("Tokenizers split unaffable words.")
/// // ["token", "##izer", "##s", "split", "una", "##ff", "##able", "words", "."]
/// let ids = try tokenizer.encode("Hello, world!", maxLength: 256)   // [101, 7592, 1010, 2088, 999, 102]
/// ```
public struct WordPieceTokenizer: Sendable {
    /// A vocabulary entry as its scalars: `String` equality is canonical equivalence, which would
    /// merge entries the reference library keeps apart ("é" and "e\u{301}").
    struct Piece: Hashable, Sendable {
        var scalars: [Unicode.Scalar]
    }

    /// The text normalisation applied before splitting.
    public let normalizer: BertNormalizer
    /// The tokens by id: line `i` of `vocab.txt` is token `i`.
    public let vocabulary: [String]
    /// The id of the unknown token (`[UNK]`).
    public let unknownID: Int
    /// The id put before every sequence (`[CLS]`).
    public let classID: Int
    /// The id put after every sequence (`[SEP]`).
    public let separatorID: Int
    /// The prefix of a piece that continues a word (`##`).
    public let continuingSubwordPrefix: String
    /// Words with more Unicode scalars than this become the unknown token (100).
    public let maxInputCharactersPerWord: Int
    /// Token strings recognised verbatim in the input, before normalisation, with their ids
    /// (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`, `[UNK]`).
    public let specialTokens: [String: Int]

    private let ids: [Piece: Int]
    private let prefixScalars: [Unicode.Scalar]
    /// The longest vocabulary entry, in scalars: no longer piece is ever looked up.
    private let longestPiece: Int
    /// The special tokens as scalars, longest first, for matching in the raw text.
    private let specialPieces: [(scalars: [Unicode.Scalar], id: Int)]

    /// Creates a tokenizer from its vocabulary (token `i` has id `i`) and settings.
    ///
    /// ```swift
    /// let tokenizer = try WordPieceTokenizer(
    ///     vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "##s", "!"])
    /// try tokenizer.encode("Hellos!")   // [2, 4, 5, 6, 3]
    /// ```
    ///
    /// - Parameters:
    ///   - vocabulary: the tokens, `vocab.txt`'s lines in order.
    ///   - normalizer: cleaning, lower-casing and accent stripping before splitting.
    ///   - unknownToken: the token of a word no pieces spell.
    ///   - classToken: the token put first (`[CLS]`).
    ///   - separatorToken: the token put last (`[SEP]`).
    ///   - specialTokens: tokens matched verbatim in the text before normalisation; by default
    ///     the unknown, class and separator tokens plus `[PAD]` and `[MASK]` where the vocabulary
    ///     has them.
    ///   - continuingSubwordPrefix: the prefix of a piece inside a word (`##`).
    ///   - maxInputCharactersPerWord: a longer word is the unknown token.
    /// - Throws: `ModelError.invalidArgument` naming the token (`"unknownToken"`, ...) that is
    ///   not in the vocabulary, or `"maxInputCharactersPerWord"` below 1.
    public init(
        vocabulary: [String],
        normalizer: BertNormalizer = BertNormalizer(),
        unknownToken: String = "[UNK]",
        classToken: String = "[CLS]",
        separatorToken: String = "[SEP]",
        specialTokens: [String]? = nil,
        continuingSubwordPrefix: String = "##",
        maxInputCharactersPerWord: Int = 100
    ) throws(ModelError) {
        var ids: [Piece: Int] = [:]
        ids.reserveCapacity(vocabulary.count)
        var longest = 0
        for (id, token) in vocabulary.enumerated() {
            let piece = Piece(scalars: Array(token.unicodeScalars))
            // The reference keeps the last id of a repeated line.
            ids[piece] = id
            longest = max(longest, piece.scalars.count)
        }
        func id(of token: String, argument: String) throws(ModelError) -> Int {
            guard let id = ids[Piece(scalars: Array(token.unicodeScalars))] else {
                throw .invalidArgument(argument: argument, reason: "\"\(token)\" is not in the vocabulary")
            }
            return id
        }
        guard maxInputCharactersPerWord >= 1 else {
            throw .invalidArgument(
                argument: "maxInputCharactersPerWord", reason: "must be at least 1, got \(maxInputCharactersPerWord)")
        }
        self.unknownID = try id(of: unknownToken, argument: "unknownToken")
        self.classID = try id(of: classToken, argument: "classToken")
        self.separatorID = try id(of: separatorToken, argument: "separatorToken")
        var specials: [String: Int] = [:]
        if let specialTokens {
            for (index, token) in specialTokens.enumerated() {
                specials[token] = try id(of: token, argument: "specialTokens[\(index)]")
            }
        } else {
            for token in [unknownToken, classToken, separatorToken, "[PAD]", "[MASK]"] {
                if let found = ids[Piece(scalars: Array(token.unicodeScalars))] { specials[token] = found }
            }
        }
        self.vocabulary = vocabulary
        self.normalizer = normalizer
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.maxInputCharactersPerWord = maxInputCharactersPerWord
        self.specialTokens = specials
        self.ids = ids
        self.prefixScalars = Array(continuingSubwordPrefix.unicodeScalars)
        self.longestPiece = longest
        self.specialPieces = specials.filter { !$0.key.isEmpty }
            .map { (Array($0.key.unicodeScalars), $0.value) }
            .sorted { $0.0.count != $1.0.count ? $0.0.count > $1.0.count : $0.1 < $1.1 }
    }

    /// The word pieces of `text`, without `[CLS]` and `[SEP]` and without truncation.
    public func tokenize(_ text: String) -> [String] {
        pieceIDs(of: text).map { vocabulary[$0] }
    }

    /// The ids the model reads for `text`: `[CLS]`, the word pieces, `[SEP]`; when `maxLength`
    /// is given, the pieces are cut so that the whole has at most `maxLength` ids (as
    /// `truncation=True, max_length=maxLength` does).
    ///
    /// - Throws: `ModelError.invalidArgument` (`"maxLength"`) when it is below 2, which leaves
    ///   no room for `[CLS]` and `[SEP]`.
    public func encode(_ text: String, maxLength: Int? = nil) throws(ModelError) -> [Int] {
        if let maxLength, maxLength < 2 {
            throw .invalidArgument(
                argument: "maxLength", reason: "must be at least 2 (room for [CLS] and [SEP]), got \(maxLength)")
        }
        var pieces = pieceIDs(of: text)
        if let maxLength, pieces.count > maxLength - 2 {
            pieces.removeLast(pieces.count - (maxLength - 2))
        }
        return [classID] + pieces + [separatorID]
    }

    /// The word-piece ids of `text`: special tokens matched in the raw text, the rest normalised,
    /// split into words and looked up.
    func pieceIDs(of text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var result: [Int] = []
        var segmentStart = 0
        var index = 0
        while index < scalars.count {
            if let (length, id) = specialToken(in: scalars, at: index) {
                appendPieces(of: scalars[segmentStart..<index], to: &result)
                result.append(id)
                index += length
                segmentStart = index
            } else {
                index += 1
            }
        }
        appendPieces(of: scalars[segmentStart..<scalars.count], to: &result)
        return result
    }

    /// The longest special token starting at `index`, if any.
    private func specialToken(in scalars: [Unicode.Scalar], at index: Int) -> (length: Int, id: Int)? {
        for (piece, id) in specialPieces where piece[0] == scalars[index] && piece.count <= scalars.count - index {
            if scalars[index..<(index + piece.count)].elementsEqual(piece) { return (piece.count, id) }
        }
        return nil
    }

    /// Normalises a stretch of text without special tokens and appends its pieces' ids.
    private func appendPieces(of segment: ArraySlice<Unicode.Scalar>, to result: inout [Int]) {
        if segment.isEmpty { return }
        let normalized = normalizer.normalizedScalars(segment)
        var wordStart = 0
        func flushWord(until end: Int) {
            if end > wordStart { appendWordPieces(of: normalized[wordStart..<end], to: &result) }
        }
        for (position, scalar) in normalized.enumerated() {
            if BertCharacterClass.isWhitespace(scalar) {
                flushWord(until: position)
                wordStart = position + 1
            } else if BertCharacterClass.isPunctuation(scalar) {
                flushWord(until: position)
                appendWordPieces(of: normalized[position..<(position + 1)], to: &result)
                wordStart = position + 1
            }
        }
        flushWord(until: normalized.count)
    }

    /// Greedy longest-match WordPiece for one word; the unknown id when the word is too long or
    /// some part of it matches nothing.
    private func appendWordPieces(of word: ArraySlice<Unicode.Scalar>, to result: inout [Int]) {
        if word.count > maxInputCharactersPerWord {
            result.append(unknownID)
            return
        }
        let firstPiece = result.count
        var start = word.startIndex
        var candidate = Piece(scalars: [])
        while start < word.endIndex {
            var end = min(word.endIndex, start + longestPiece)
            var match: Int?
            while end > start {
                candidate.scalars.removeAll(keepingCapacity: true)
                if start > word.startIndex { candidate.scalars.append(contentsOf: prefixScalars) }
                candidate.scalars.append(contentsOf: word[start..<end])
                if let id = ids[candidate] {
                    match = id
                    break
                }
                end -= 1
            }
            guard let match else {
                result.removeSubrange(firstPiece...)
                result.append(unknownID)
                return
            }
            result.append(match)
            start = end
        }
    }
}
