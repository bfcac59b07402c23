extension ByteLevelBPETokenizer {
    /// A token found in the text as written, before pre-tokenization: an entry of `tokenizer.json`'s
    /// `added_tokens` (`<|endoftext|>`, `<|im_start|>`, ...), with its options.
    ///
    /// ```swift
    /// let endOfText = ByteLevelBPETokenizer.AddedToken(id: 256, content: "<|endoftext|>", isSpecial: true)
    /// ```
    public struct AddedToken: Sendable, Equatable, Hashable {
        /// The token's id.
        public var id: Int
        /// The text it matches.
        public var content: String
        /// A special token (`special`): left out of decoded text unless asked for.
        public var isSpecial: Bool
        /// Matched only as a whole word (`single_word`): not after or before a word character
        /// (alphabetic, mark, decimal digit, connector punctuation or join control).
        public var isSingleWord: Bool
        /// Takes the whitespace before it (`lstrip`), which then produces no token.
        public var stripsLeft: Bool
        /// Takes the whitespace after it (`rstrip`).
        public var stripsRight: Bool
        /// Matched in the normalised text rather than the text as written (`normalized`).
        public var isNormalized: Bool

        /// An added token; `isNormalized: nil` normalises all but special tokens, as the
        /// `tokenizers` library's default.
        public init(
            id: Int, content: String, isSpecial: Bool = false, isSingleWord: Bool = false, stripsLeft: Bool = false,
            stripsRight: Bool = false, isNormalized: Bool? = nil
        ) {
            self.id = id
            self.content = content
            self.isSpecial = isSpecial
            self.isSingleWord = isSingleWord
            self.stripsLeft = stripsLeft
            self.stripsRight = stripsRight
            self.isNormalized = isNormalized ?? !isSpecial
        }
    }
}
