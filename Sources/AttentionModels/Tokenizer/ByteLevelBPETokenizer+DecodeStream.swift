extension ByteLevelBPETokenizer {
    /// Decodes ids one at a time, as a model generates them: each call returns the text that id
    /// completes, holding back the bytes of a character split across tokens until its last byte
    /// arrives. The pieces joined, with ``finish()``'s, are ``ByteLevelBPETokenizer/decode(_:skipSpecialTokens:)``
    /// of all the ids.
    ///
    /// ```swift
    /// var stream = ByteLevelBPETokenizer.DecodeStream(tokenizer: .plainBytes)
    /// stream.append(0xC3)   // "": the first byte of "é"
    /// stream.append(0xA9)   // "é"
    /// stream.finish()       // ""
    /// ```
    public struct DecodeStream: Sendable {
        /// The tokenizer whose tokens the ids are.
        public let tokenizer: ByteLevelBPETokenizer
        /// Whether special tokens are left out, as ``ByteLevelBPETokenizer/decode(_:skipSpecialTokens:)`` does.
        public let skipSpecialTokens: Bool
        /// The bytes of an incomplete character at the end of the text so far.
        private var pending: [UInt8] = []

        /// A stream with nothing decoded yet.
        public init(tokenizer: ByteLevelBPETokenizer, skipSpecialTokens: Bool = true) {
            self.tokenizer = tokenizer
            self.skipSpecialTokens = skipSpecialTokens
        }

        /// The text `id` adds: its token's bytes after those held back, up to a character still
        /// incomplete at the end (`""` when nothing is complete yet).
        public mutating func append(_ id: Int) -> String {
            tokenizer.appendBytes(of: id, skippingSpecialTokens: skipSpecialTokens, to: &pending)
            let complete = Self.completeLength(of: pending)
            let text = String(decoding: pending[..<complete], as: UTF8.self)
            pending.removeFirst(complete)
            return text
        }

        /// The bytes still held back, decoded (an incomplete character as U+FFFD); the stream is
        /// then empty.
        public mutating func finish() -> String {
            defer { pending.removeAll() }
            return String(decoding: pending, as: UTF8.self)
        }

        /// How many of `bytes` decode the same whatever follows: all but a last UTF-8 sequence
        /// that is valid so far and incomplete. A lead byte always starts a sequence of its own
        /// for a decoder (no sequence continues with one), so the text before it is final.
        static func completeLength(of bytes: [UInt8]) -> Int {
            var start = bytes.count
            while start > 0 && bytes.count - start < 3 && bytes[start - 1] & 0xC0 == 0x80 { start -= 1 }
            guard start > 0 else { return bytes.count }
            let lead = start - 1
            let length: Int
            switch bytes[lead] {
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default: return bytes.count
            }
            guard bytes.count - lead < length else { return bytes.count }
            guard lead + 1 < bytes.count else { return lead }
            // The second byte's range narrows after E0, ED, F0 and F4 (no overlong forms, surrogates or values past U+10FFFF).
            let second = bytes[lead + 1]
            let valid: ClosedRange<UInt8> =
                switch bytes[lead] {
                case 0xE0: 0xA0...0xBF
                case 0xED: 0x80...0x9F
                case 0xF0: 0x90...0xBF
                case 0xF4: 0x80...0x8F
                default: 0x80...0xBF
                }
            return valid.contains(second) ? lead : bytes.count
        }
    }
}
