import Attention
import Foundation

/// The byte-level BPE tokenizer of GPT-2, Llama 3, Qwen2, SmolLM and their kin, read from a
/// `tokenizer.json`: text becomes the UTF-8 bytes of its pre-tokens, each byte a token, merged
/// pair by pair in the order of the merges. Any text encodes, and every id sequence decodes.
///
/// The ids equal those of the `tokenizers` library (the fast tokenizer of `transformers`), step
/// for step:
/// 1. Added tokens (``AddedToken``: `<|endoftext|>`, ...) are found in the text as written, then
///    in each stretch between them after the normaliser (none, or NFC as Qwen2's), so they never
///    reach the steps below.
/// 2. The pre-tokenizer cuts each stretch: Llama 3's or Qwen2's `Split` pattern, or SmolLM's
///    `Digits`, then `ByteLevel` (GPT-2's pattern, a leading space if asked for) and the bytes.
/// 3. `BPE` merges each pre-token's bytes by merge rank; with `ignore_merges` (Llama 3) a
///    pre-token that is a whole vocabulary entry is that entry.
/// 4. With `addSpecialTokens`, the post-processor's template puts its tokens around the ids
///    (Llama 3's `<|begin_of_text|>`).
///
/// Decoding reverses the byte mapping and reads the bytes as UTF-8, an invalid sequence becoming
/// U+FFFD as in the library; ``DecodeStream`` decodes as ids arrive, holding back the bytes of a
/// character until it is complete.
///
/// ```swift
/// let tokenizer = try ByteLevelBPETokenizer(contentsOf: URL(fileURLWithPath: "models/my-llama"))
/// let ids = tokenizer.encode("Hello, world!")
/// tokenizer.decode(ids)   // "Hello, world!"
/// ```
public struct ByteLevelBPETokenizer: Sendable {
    /// The model's tokens by id (`model.vocab`), spelled with GPT-2's byte characters (`Ġ` for
    /// the space).
    public let vocabulary: [String]
    /// The added tokens, by id.
    public let addedTokens: [AddedToken]

    /// The number of ids the tokenizer can produce: one more than its largest id, of the
    /// vocabulary or an added token. A model's vocabulary must be at least this large.
    public var idCount: Int {
        max(vocabulary.count, (addedTokens.map(\.id).max() ?? -1) + 1)
    }

    /// How a tokenizer is set up around its vocabulary and merges.
    struct Settings: Sendable {
        /// The `NFC` normaliser (Qwen2's), or none.
        var normalizesToNFC: Bool
        var preTokenizer: ByteLevelPreTokenizer
        var postProcessor: PostProcessor
        /// `unk_token`: the token of a byte the vocabulary lacks (such bytes are dropped without one).
        var unknownToken: String?
        /// `fuse_unk`: consecutive unknown bytes make one unknown token.
        var fusesUnknown: Bool
        /// `ignore_merges`: a pre-token found whole in the vocabulary is not merged.
        var ignoresMerges: Bool

        /// GPT-2's: `ByteLevel` with its pattern and no leading space, nothing else.
        static let gpt2 = Settings(
            normalizesToNFC: false,
            preTokenizer: ByteLevelPreTokenizer(
                steps: [], addsPrefixSpace: false, usesGPT2Pattern: true, trimsOffsets: true),
            postProcessor: PostProcessor(), unknownToken: nil, fusesUnknown: false, ignoresMerges: false)
    }

    /// `TemplateProcessing`'s ids around a single text, and the `post_processor` section itself.
    struct PostProcessor: Sendable {
        /// The ids before the text's (`<|begin_of_text|>`).
        var idsBefore: [Int] = []
        /// The ids after the text's.
        var idsAfter: [Int] = []
        /// The section as read, written back as it was (`null` for none).
        var json: JSONValue = .null
    }

    let settings: Settings
    /// The merges in rank order, as vocabulary ids.
    let merges: [(left: Int32, right: Int32)]
    private let encoder: BytePairEncoder
    private let ids: [String: Int]
    private let addedContents: [Int: String]
    private let specialContents: Set<String>
    /// Tokens matched in the text as written, then in the normalised text.
    private let writtenTokens: AddedTokenSplitter
    private let normalizedTokens: AddedTokenSplitter

    /// A tokenizer with GPT-2's settings: its pre-tokenizer (`ByteLevel` with GPT-2's pattern and
    /// no leading space), no normaliser and no post-processor.
    ///
    /// ```swift
    /// let bytes = ByteLevelBPETokenizer.plainBytes.vocabulary   // "!" is id 33, "Ġ" (the space) id 32
    /// let tokenizer = try ByteLevelBPETokenizer(vocabulary: bytes + ["Ġt", "he", "Ġthe"],
    ///                                           merges: [("Ġ", "t"), ("h", "e"), ("Ġt", "he")])
    /// tokenizer.encode("the theme")   // [116, 257, 258, 109, 101]: "t", "he", "Ġthe", "m", "e"
    /// ```
    ///
    /// - Parameters:
    ///   - vocabulary: the tokens, token `i` having id `i`, spelled with GPT-2's byte characters
    ///     (``plainBytes``' vocabulary has the 256 of them).
    ///   - merges: the pairs merged, highest priority first; each pair's tokens and their
    ///     concatenation must be in the vocabulary.
    ///   - addedTokens: tokens matched in the text before pre-tokenization.
    /// - Throws: `ModelError.invalidArgument` naming `"vocabulary"` (a token twice), the merge
    ///   (`"merges[3]"`) or the added token (`"addedTokens[0]"`) that is wrong.
    public init(vocabulary: [String], merges: [(String, String)], addedTokens: [AddedToken] = []) throws(ModelError) {
        try self.init(
            vocabulary: vocabulary, merges: merges, addedTokens: addedTokens, settings: .gpt2, names: .arguments,
            problem: { .invalidArgument(argument: $0, reason: $1) })
    }

    /// What errors call the parts of a tokenizer: the arguments of
    /// ``init(vocabulary:merges:addedTokens:)`` or the keys of `tokenizer.json`.
    struct PartNames {
        var vocabulary: String
        var merges: String
        var addedTokens: String

        static let arguments = PartNames(vocabulary: "vocabulary", merges: "merges", addedTokens: "addedTokens")
        static let file = PartNames(vocabulary: "model.vocab", merges: "model.merges", addedTokens: "added_tokens")
    }

    /// A tokenizer of ids 0...255, one per byte value, with no merges: text encodes to its
    /// UTF-8 bytes. ``write(to:)`` saves it as a `tokenizer.json` that `tokenizers` and
    /// `transformers`' `AutoTokenizer` read.
    public static let plainBytes: ByteLevelBPETokenizer = {
        let vocabulary = ByteLevelAlphabet.characters.map { String(Character($0)) }
        do {
            return try ByteLevelBPETokenizer(vocabulary: vocabulary, merges: [])
        } catch {
            fatalError("the 256 byte characters are distinct: \(error)")
        }
    }()

    /// The tokenizer of `vocabulary`, `merges` and `addedTokens` with `settings`; `problem` makes
    /// the error for a part, as `names` calls it (`"merges[3]"`), and what is wrong with it.
    init(
        vocabulary: [String], merges: [(String, String)], addedTokens: [AddedToken], settings: Settings,
        names: PartNames, problem: (_ part: String, _ reason: String) -> ModelError
    ) throws(ModelError) {
        var ids: [String: Int] = [:]
        ids.reserveCapacity(vocabulary.count)
        for (id, token) in vocabulary.enumerated() {
            if let earlier = ids.updateValue(id, forKey: token) {
                throw problem(names.vocabulary, "\"\(token)\" is both id \(earlier) and id \(id)")
            }
        }
        func id(of token: String, in part: String) throws(ModelError) -> Int32 {
            guard let id = ids[token] else { throw problem(part, "\"\(token)\" is not in the vocabulary") }
            return Int32(id)
        }

        var mergeIDs: [(left: Int32, right: Int32)] = []
        var table: [UInt64: BytePairEncoder.Merge] = [:]
        mergeIDs.reserveCapacity(merges.count)
        table.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            let part = "\(names.merges)[\(rank)]"
            let pair = (left: try id(of: left, in: part), right: try id(of: right, in: part))
            let merged = try id(of: left + right, in: part)
            mergeIDs.append(pair)
            // As in the library, a repeated pair keeps its last rank.
            table[BytePairEncoder.key(pair.left, pair.right)] = BytePairEncoder.Merge(rank: Int32(rank), id: merged)
        }

        var addedContents: [Int: String] = [:]
        for (index, token) in addedTokens.enumerated() {
            let part = "\(names.addedTokens)[\(index)]"
            guard !token.content.isEmpty else { throw problem(part, "has an empty content") }
            if let vocabularyID = ids[token.content], vocabularyID != token.id {
                throw problem(part, "\"\(token.content)\" is id \(vocabularyID) in the vocabulary, not \(token.id)")
            }
            guard token.id >= 0, ids[token.content] != nil || token.id >= vocabulary.count else {
                throw problem(part, "id \(token.id) is another token's")
            }
            guard addedContents.updateValue(token.content, forKey: token.id) == nil else {
                throw problem(part, "repeats the id \(token.id)")
            }
            guard addedTokens[..<index].allSatisfy({ $0.content != token.content }) else {
                throw problem(part, "repeats the content \"\(token.content)\"")
            }
        }

        let byteIDs = ByteLevelAlphabet.characters.map { ids[String(Character($0))].map(Int32.init) ?? -1 }
        // The loader has checked that the vocabulary has the unknown token.
        let unknownID = settings.unknownToken.flatMap { ids[$0] }.map(Int32.init)
        var wholeTokenIDs: [[UInt8]: Int]?
        if settings.ignoresMerges {
            wholeTokenIDs = [:]
            for (id, token) in vocabulary.enumerated() {
                if let bytes = ByteLevelAlphabet.bytes(spelledBy: token) { wholeTokenIDs?[bytes] = id }
            }
        }
        self.vocabulary = vocabulary
        self.addedTokens = addedTokens.sorted { $0.id < $1.id }
        self.settings = settings
        self.merges = mergeIDs
        self.encoder = BytePairEncoder(
            byteIDs: byteIDs, merges: table, wholeTokenIDs: wholeTokenIDs, unknownID: unknownID,
            fusesUnknown: settings.fusesUnknown)
        self.ids = ids
        self.addedContents = addedContents
        self.specialContents = Set(addedTokens.filter(\.isSpecial).map(\.content))
        self.writtenTokens = AddedTokenSplitter(addedTokens.filter { !$0.isNormalized }) { Array($0.unicodeScalars) }
        let normalizesToNFC = settings.normalizesToNFC
        self.normalizedTokens = AddedTokenSplitter(addedTokens.filter(\.isNormalized)) { content in
            Self.normalized(Array(content.unicodeScalars)[...], toNFC: normalizesToNFC)
        }
    }

    /// The id of `token`: an added token's, or the vocabulary's.
    public func id(for token: String) -> Int? {
        addedTokens.first { $0.content == token }?.id ?? ids[token]
    }

    /// The token of `id`: an added token's content, or the vocabulary's entry; `nil` for an id
    /// with neither.
    public func token(for id: Int) -> String? {
        addedContents[id] ?? (vocabulary.indices.contains(id) ? vocabulary[id] : nil)
    }

    /// The ids of `text`; with `addSpecialTokens` (the default, as in `tokenizers`), the
    /// post-processor's tokens around them (Llama 3's `<|begin_of_text|>` before).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var result: [Int] = []
        if addSpecialTokens { result += settings.postProcessor.idsBefore }
        var scratch = BytePairEncoder.Scratch()
        // The ids of each distinct pre-token, merged once per text.
        var cache: [[UInt8]: [Int]] = [:]
        func appendIDs(of segment: AddedTokenSplitter.Segment, pre: (ArraySlice<Unicode.Scalar>) -> Void) {
            switch segment {
            case let .token(id): result.append(id)
            case let .text(text): pre(text)
            }
        }
        let scalars = Array(text.unicodeScalars)
        writtenTokens.split(scalars[...]) { written in
            appendIDs(of: written) { raw in
                let normalized = Self.normalized(raw, toNFC: settings.normalizesToNFC)
                normalizedTokens.split(normalized[...]) { part in
                    appendIDs(of: part) { text in
                        settings.preTokenizer.forEachPreToken(of: Array(text)) { bytes in
                            if let ids = cache[bytes] {
                                result += ids
                            } else {
                                let start = result.count
                                encoder.appendIDs(of: bytes, to: &result, scratch: &scratch)
                                cache[bytes] = Array(result[start...])
                            }
                        }
                    }
                }
            }
        }
        if addSpecialTokens { result += settings.postProcessor.idsAfter }
        return result
    }

    /// The text of `ids`: their tokens' bytes read as UTF-8, each invalid sequence replaced by
    /// U+FFFD; special tokens left out unless `skipSpecialTokens` is false, and ids no token has
    /// skipped (as `tokenizers` decodes).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var bytes: [UInt8] = []
        for id in ids { appendBytes(of: id, skippingSpecialTokens: skipSpecialTokens, to: &bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the bytes of `id`'s token: what its byte characters stand for, or, for a token
    /// with another character (an added token), its own UTF-8.
    func appendBytes(of id: Int, skippingSpecialTokens: Bool, to bytes: inout [UInt8]) {
        guard let token = token(for: id), !(skippingSpecialTokens && specialContents.contains(token)) else { return }
        if let spelled = ByteLevelAlphabet.bytes(spelledBy: token) {
            bytes += spelled
        } else {
            bytes += token.utf8
        }
    }

    /// `scalars` in NFC when `toNFC`, else as they are.
    private static func normalized(_ scalars: ArraySlice<Unicode.Scalar>, toNFC: Bool) -> [Unicode.Scalar] {
        guard toNFC, scalars.contains(where: { !$0.isASCII }) else { return Array(scalars) }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return Array(String(view).precomposedStringWithCanonicalMapping.unicodeScalars)
    }
}
