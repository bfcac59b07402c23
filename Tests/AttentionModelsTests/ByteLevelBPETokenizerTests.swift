import Attention
import Foundation
import Testing
@testable import AttentionModels

/// The ids and decodes of the `tokenizers` library for the texts of `generate_bpe_fixtures.py`.
struct BPECorpus: Decodable {
    struct LongText: Decodable {
        var count: Int
        var checksum: UInt32
    }

    struct Reference: Decodable {
        var vocabulary_size: Int
        var ids: [[Int]]
        var decoded_where_different: [String?]
        var long_text: LongText
        var random_ids: [[Int]]
        var random_decoded: [String]
        var random_decoded_with_special: [String]?
    }

    var texts: [String]
    var long_text_repeats: Int
    var tokenizers: [String: Reference]

    static let names = [
        "bpe-256", "bpe-1000", "bpe-8000", "bpe-digits", "bpe-added", "bpe-ascii", "bpe-unknown", "bpe-unknown-fused",
    ]
}

/// The checksum of `generate_bpe_fixtures.py`: a polynomial hash of the ids modulo 2³².
func checksum(_ ids: [Int]) -> UInt32 {
    ids.reduce(UInt32(0)) { $0 &* 1_000_003 &+ UInt32($1 + 1) }
}

/// A fixture's parsed `tokenizer.json`.
func tokenizerJSON(_ folder: URL) throws -> JSONValue {
    try JSONParser.parse(utf8: [UInt8](Data(contentsOf: folder.appendingPathComponent("tokenizer.json"))))
}

@Suite struct ByteLevelBPETokenizerTests {
    let corpus: BPECorpus

    init() throws {
        corpus = try loadFixture(BPECorpus.self, "bpe_tokenizer_ids.json")
    }

    @Test(arguments: BPECorpus.names)
    func matchesTheReferenceOnTheCorpus(name: String) throws {
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: fixtureURL(name))
        let reference = try #require(corpus.tokenizers[name])
        #expect(corpus.texts.count > 100 && reference.ids.count >= 40)
        var mismatches: [String] = []
        for (index, expected) in reference.ids.enumerated() {
            let text = corpus.texts[index]
            let ids = tokenizer.encode(text)
            if ids != expected {
                mismatches.append("#\(index) \(text.debugDescription.prefix(60)): \(ids.prefix(20)) vs \(expected.prefix(20))")
            }
            let decoded = tokenizer.decode(expected)
            if decoded != reference.decoded_where_different[index] ?? text {
                mismatches.append("#\(index) decodes to \(decoded.debugDescription.prefix(60))")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) differ:\n\(mismatches.prefix(10).joined(separator: "\n"))")
    }

    @Test(arguments: BPECorpus.names)
    func decodesRandomIDsAsTheReference(name: String) throws {
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: fixtureURL(name))
        let reference = try #require(corpus.tokenizers[name])
        let withSpecial = reference.random_decoded_with_special ?? reference.random_decoded
        for (index, ids) in reference.random_ids.enumerated() {
            #expect(tokenizer.decode(ids) == reference.random_decoded[index], "list #\(index) \(ids)")
            #expect(tokenizer.decode(ids, skipSpecialTokens: false) == withSpecial[index], "list #\(index) \(ids)")
        }
    }

    /// The texts joined, several times over: a text of 44 KB, one of 40 000 identical pre-tokens
    /// (the cache) and one pre-token of 200 000 bytes (the merges' priority queue), none slow.
    @Test(arguments: BPECorpus.names)
    func encodesLongTextsAsTheReferenceInLinearTime(name: String) throws {
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: fixtureURL(name))
        let reference = try #require(corpus.tokenizers[name])
        let text = String(repeating: corpus.texts.joined(separator: "\n"), count: corpus.long_text_repeats)
        let clock = ContinuousClock()
        let start = clock.now
        let ids = tokenizer.encode(text)
        #expect(ids.count == reference.long_text.count && checksum(ids) == reference.long_text.checksum)
        let repeated = tokenizer.encode(String(repeating: "the cat sat ", count: 40_000))
        let word = tokenizer.encode(String(repeating: "ab", count: 100_000))
        #expect(tokenizer.decode(repeated).hasSuffix("sat ") && word.count >= 1)
        // About 0.1 s each in a debug build; a pass quadratic in a pre-token's length would take minutes.
        #expect(clock.now - start < .seconds(20))
    }

    @Test func readsTheSettingsOfEachFixture() throws {
        let gpt2 = try ByteLevelBPETokenizer(contentsOf: fixtureURL("bpe-1000"))
        #expect(gpt2.vocabulary.count == 1000 && gpt2.merges.count == 744 && gpt2.addedTokens.isEmpty)
        #expect(gpt2.settings.preTokenizer == ByteLevelPreTokenizer(
            steps: [], addsPrefixSpace: false, usesGPT2Pattern: true, trimsOffsets: true))
        let llama3 = try ByteLevelBPETokenizer(contentsOf: fixtureURL("bpe-8000"))
        #expect(llama3.vocabulary.count == 8000 && llama3.settings.ignoresMerges)
        #expect(llama3.settings.preTokenizer.steps == [.split(.llama3)] && !llama3.settings.preTokenizer.usesGPT2Pattern)
        let smollm = try ByteLevelBPETokenizer(contentsOf: fixtureURL("bpe-digits"))
        #expect(smollm.settings.preTokenizer.steps == [.individualDigits] && smollm.settings.preTokenizer.usesGPT2Pattern)
        #expect(try ByteLevelBPETokenizer(contentsOf: fixtureURL("bpe-256")).settings.preTokenizer.addsPrefixSpace)

        let qwen2 = try ByteLevelBPETokenizer(contentsOf: fixtureURL("bpe-added"))
        #expect(qwen2.settings.normalizesToNFC && qwen2.settings.preTokenizer.steps == [.split(.qwen2)])
        #expect(qwen2.settings.postProcessor.idsBefore == [1202] && qwen2.settings.postProcessor.idsAfter.isEmpty)
        #expect(qwen2.addedTokens.map(\.content) == [
            "<|endoftext|>", "the", "<|im_start|>", "<|im_end|>", "<|bos|>", "<mask>", "hello world", "ſt", "café",
        ])
        #expect(qwen2.addedTokens[5] == ByteLevelBPETokenizer.AddedToken(
            id: 1203, content: "<mask>", stripsLeft: true, stripsRight: true, isNormalized: false))
        #expect(qwen2.id(for: "<|im_end|>") == 1201 && qwen2.token(for: 1206) == "café" && qwen2.token(for: 5000) == nil)
        #expect(qwen2.encode("hi", addSpecialTokens: false) == qwen2.encode("hi").dropFirst().map { $0 })

        let unknown = try ByteLevelBPETokenizer(contentsOf: fixtureURL("bpe-unknown-fused"))
        #expect(unknown.settings.unknownToken == "<unk>" && unknown.settings.fusesUnknown)
    }

    /// Every fixture written and read back: the same JSON (bpe-1000's merges turned from strings
    /// into pairs) and the same ids. With `BPE_WRITTEN_TOKENIZERS=DIR`, the files also go to DIR,
    /// for `generate_bpe_fixtures.py --check-written DIR` to load in the `tokenizers` library.
    @Test(arguments: BPECorpus.names)
    func writesWhatItReads(name: String) throws {
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: fixtureURL(name))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try tokenizer.write(to: folder)
        if let directory = ProcessInfo.processInfo.environment["BPE_WRITTEN_TOKENIZERS"] {
            try tokenizer.write(to: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
        var expected = try tokenizerJSON(fixtureURL(name))
        if name == "bpe-1000" { expected = Self.pairMerges(expected) }
        #expect(try tokenizerJSON(folder) == expected)
        let reread = try ByteLevelBPETokenizer(contentsOf: folder)
        let reference = try #require(corpus.tokenizers[name])
        for (index, ids) in reference.ids.enumerated() {
            #expect(reread.encode(corpus.texts[index]) == ids, "text #\(index)")
        }
    }

    /// `document` with the model's `"a b"` merges as `["a", "b"]` pairs.
    static func pairMerges(_ document: JSONValue) -> JSONValue {
        guard case var .object(members) = document, case var .object(model)? = members["model"],
            case let .array(merges)? = model["merges"]
        else { return document }
        model["merges"] = .array(merges.map { merge in
            guard case let .string(line) = merge else { return merge }
            return .array(line.split(separator: " ").map { .string(String($0)) })
        })
        members["model"] = .object(model)
        return .object(members)
    }

    /// The plain-bytes tokenizer writes the file `generate_bpe_fixtures.py` checked to load in
    /// `tokenizers` and `AutoTokenizer`, and encodes any text to its UTF-8 bytes.
    @Test func plainBytesWritesTheReferenceFile() throws {
        let tokenizer = ByteLevelBPETokenizer.plainBytes
        #expect(tokenizer.vocabulary.count == 256 && tokenizer.merges.isEmpty)
        #expect(tokenizer.vocabulary[32] == "Ġ" && tokenizer.vocabulary[33] == "!" && tokenizer.vocabulary[10] == "Ċ")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-bytes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try tokenizer.write(to: folder)
        #expect(try tokenizerJSON(folder) == tokenizerJSON(fixtureURL("bpe-plain-bytes")))
        let reread = try ByteLevelBPETokenizer(contentsOf: fixtureURL("bpe-plain-bytes"))
        for text in corpus.texts {
            #expect(tokenizer.encode(text) == text.utf8.map(Int.init))
            #expect(reread.encode(text) == text.utf8.map(Int.init))
            #expect(tokenizer.decode(tokenizer.encode(text)) == text)
        }
        #expect(throws: ModelError.self) {
            try tokenizer.write(to: URL(fileURLWithPath: "/dev/null/bytes"))
        }
    }

    /// The pieces of a stream joined are the whole decode, for the corpus's ids and random ones;
    /// a character split across ids comes out whole, once its last byte is in.
    @Test(arguments: BPECorpus.names)
    func decodeStreamGivesTheWholeDecode(name: String) throws {
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: fixtureURL(name))
        let reference = try #require(corpus.tokenizers[name])
        for ids in reference.ids + reference.random_ids {
            for skipSpecialTokens in [true, false] {
                var stream = ByteLevelBPETokenizer.DecodeStream(tokenizer: tokenizer, skipSpecialTokens: skipSpecialTokens)
                let pieces = ids.map { stream.append($0) } + [stream.finish()]
                #expect(pieces.joined() == tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens), "\(ids)")
            }
        }
    }

    @Test func decodeStreamHoldsBackIncompleteCharacters() {
        var stream = ByteLevelBPETokenizer.DecodeStream(tokenizer: .plainBytes)
        let family = Array("a👨‍👩‍👧é".utf8)
        let pieces = family.map { stream.append(Int($0)) }
        #expect(pieces.joined() == "a👨‍👩‍👧é" && stream.finish() == "")
        #expect(pieces.prefix(5) == ["a", "", "", "", "👨"] && pieces.last == "é")
        // Invalid bytes come out as soon as they are known invalid; an incomplete end at finish().
        #expect([0xE0, 0x80, 0x41, 0xF0, 0x9F].map { stream.append($0) } == ["", "\u{FFFD}\u{FFFD}", "A", "", ""])
        #expect(stream.finish() == "\u{FFFD}" && stream.finish() == "")
        #expect(ByteLevelBPETokenizer.DecodeStream.completeLength(of: [0x61, 0xED, 0xA0]) == 3)
        #expect(ByteLevelBPETokenizer.DecodeStream.completeLength(of: [0x61, 0xF4, 0x8F, 0xBF]) == 1)
        #expect(ByteLevelBPETokenizer.DecodeStream.completeLength(of: [0x80, 0x80, 0x80, 0x80]) == 4)
    }

    @Test func buildsFromAVocabularyAndMerges() throws {
        let bytes = ByteLevelBPETokenizer.plainBytes.vocabulary   // "!" is id 33, "Ġ" (the space) id 32
        let tokenizer = try ByteLevelBPETokenizer(vocabulary: bytes + ["Ġt", "he", "Ġthe"],
                                                  merges: [("Ġ", "t"), ("h", "e"), ("Ġt", "he")])
        #expect(tokenizer.encode("the theme") == [116, 257, 258, 109, 101])
        #expect(tokenizer.decode([116, 257, 258, 109, 101]) == "the theme")
        let endOfText = ByteLevelBPETokenizer.AddedToken(id: 256, content: "<|endoftext|>", isSpecial: true)
        let withToken = try ByteLevelBPETokenizer(vocabulary: bytes, merges: [], addedTokens: [endOfText])
        #expect(withToken.encode("a<|endoftext|>") == [97, 256])
        #expect(withToken.decode([97, 256]) == "a" && withToken.decode([97, 256], skipSpecialTokens: false) == "a<|endoftext|>")
        #expect(!endOfText.isNormalized && ByteLevelBPETokenizer.AddedToken(id: 1, content: "x").isNormalized)
    }

    @Test func namesTheWrongArgument() {
        let bytes = ByteLevelBPETokenizer.plainBytes.vocabulary
        #expect(throws: ModelError.invalidArgument(argument: "vocabulary", reason: "\"a\" is both id 97 and id 256")) {
            try ByteLevelBPETokenizer(vocabulary: bytes + ["a"], merges: [])
        }
        #expect(throws: ModelError.invalidArgument(argument: "merges[1]", reason: "\"abc\" is not in the vocabulary")) {
            try ByteLevelBPETokenizer(vocabulary: bytes + ["ab"], merges: [("a", "b"), ("ab", "c")])
        }
        let cases: [(ByteLevelBPETokenizer.AddedToken, String)] = [
            (.init(id: 256, content: ""), "has an empty content"),
            (.init(id: 300, content: "a"), "\"a\" is id 97 in the vocabulary, not 300"),
            (.init(id: 5, content: "<s>"), "id 5 is another token's"),
        ]
        for (token, reason) in cases {
            #expect(throws: ModelError.invalidArgument(argument: "addedTokens[0]", reason: reason)) {
                try ByteLevelBPETokenizer(vocabulary: bytes, merges: [], addedTokens: [token])
            }
        }
        let repeated: [([ByteLevelBPETokenizer.AddedToken], String)] = [
            ([.init(id: 256, content: "<s>"), .init(id: 257, content: "<s>")], "repeats the content \"<s>\""),
            ([.init(id: 256, content: "<s>"), .init(id: 256, content: "</s>")], "repeats the id 256"),
        ]
        for (tokens, reason) in repeated {
            #expect(throws: ModelError.invalidArgument(argument: "addedTokens[1]", reason: reason)) {
                try ByteLevelBPETokenizer(vocabulary: bytes, merges: [], addedTokens: tokens)
            }
        }
    }

    /// Each setting this tokenizer does not implement is refused, naming it; so are malformed files.
    @Test func refusesWhatItDoesNotImplement() throws {
        let plain = try tokenizerJSON(fixtureURL("bpe-plain-bytes"))
        func loading(_ change: (inout [String: JSONValue]) -> Void) throws -> ByteLevelBPETokenizer {
            guard case var .object(members) = plain else { throw ModelError.invalidFile(file: "", reason: "") }
            change(&members)
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-bad-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            try Data(JSONValue.object(members).serialized.utf8).write(to: folder.appendingPathComponent("tokenizer.json"))
            return try ByteLevelBPETokenizer(contentsOf: folder)
        }
        func model(_ key: String, _ value: JSONValue) -> (inout [String: JSONValue]) -> Void {
            { members in
                guard case var .object(model)? = members["model"] else { return }
                model[key] = value
                members["model"] = .object(model)
            }
        }
        let split = JSONValue.object([
            "type": .string("Split"), "pattern": .object(["Regex": .string(#"\s+"#)]), "behavior": .string("Isolated"),
            "invert": .bool(false),
        ])
        let byteLevel = JSONValue.object(["type": .string("ByteLevel")])
        let cases: [((inout [String: JSONValue]) -> Void, ModelError)] = [
            ({ $0["decoder"] = .null }, .unsupported(file: "tokenizer.json", setting: "decoder", value: "null", supported: ["ByteLevel"])),
            ({ $0["normalizer"] = .object(["type": .string("Lowercase")]) },
             .unsupported(file: "tokenizer.json", setting: "normalizer.type", value: "Lowercase", supported: ["NFC"])),
            ({ $0["pre_tokenizer"] = .object(["type": .string("Whitespace")]) },
             .unsupported(file: "tokenizer.json", setting: "pre_tokenizer.type", value: "Whitespace", supported: ["ByteLevel", "Sequence"])),
            ({ $0["pre_tokenizer"] = .object(["type": .string("Sequence"), "pretokenizers": .array([split, byteLevel])]) },
             .unsupported(file: "tokenizer.json", setting: "pre_tokenizer.pretokenizers[0].pattern.Regex", value: #"\s+"#,
                          supported: PreTokenizerPattern.allCases.map(\.rawValue))),
            ({ $0["pre_tokenizer"] = .object(["type": .string("Sequence"), "pretokenizers": .array([byteLevel, split])]) },
             .unsupported(file: "tokenizer.json", setting: "pre_tokenizer.pretokenizers[0].type", value: "ByteLevel",
                          supported: ["Split", "Digits"])),
            ({ $0["post_processor"] = .object(["type": .string("RobertaProcessing")]) },
             .unsupported(file: "tokenizer.json", setting: "post_processor.type", value: "RobertaProcessing",
                          supported: ["ByteLevel", "TemplateProcessing", "Sequence"])),
            (model("type", .string("WordPiece")), .unsupported(file: "tokenizer.json", setting: "model.type", value: "WordPiece", supported: ["BPE"])),
            (model("byte_fallback", .bool(true)), .unsupported(file: "tokenizer.json", setting: "model.byte_fallback", value: "true", supported: ["false"])),
            (model("continuing_subword_prefix", .string("##")),
             .unsupported(file: "tokenizer.json", setting: "model.continuing_subword_prefix", value: "##", supported: ["null", "\"\""])),
            (model("merges", .array([.string("a b c")])),
             .invalidFile(file: "tokenizer.json", reason: "model.merges[0] must be \"a b\" or [\"a\", \"b\"], got \"a b c\"")),
            (model("merges", .array([.string("a 中")])), .invalidFile(file: "tokenizer.json", reason: "model.merges[0]: \"中\" is not in the vocabulary")),
            (model("unk_token", .string("<unk>")), .invalidFile(file: "tokenizer.json", reason: "model.unk_token \"<unk>\" is not in model.vocab")),
            (model("vocab", .object(["a": JSONValue(3)])),
             .invalidFile(file: "tokenizer.json", reason: "model.vocab[\"a\"] must be a distinct id in 0..<1, got 3")),
            ({ $0["added_tokens"] = .array([.object(["id": JSONValue(300), "content": .string("a")])]) },
             .invalidFile(file: "tokenizer.json", reason: "added_tokens[0]: \"a\" is id 97 in the vocabulary, not 300")),
        ]
        for (change, error) in cases {
            #expect(throws: error) { try loading(change) }
        }
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-tokenizer-\(UUID().uuidString)")
        #expect(throws: ModelError.missingFile(path: missing.appendingPathComponent("tokenizer.json").path)) {
            try ByteLevelBPETokenizer(contentsOf: missing)
        }
    }

    /// Every code point in a probe string, against a file written by
    /// `generate_bpe_fixtures.py --sweep FILE`; runs only when `BPE_PRE_TOKENIZER_SWEEP=FILE` is set.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["BPE_PRE_TOKENIZER_SWEEP"] != nil,
                   "set BPE_PRE_TOKENIZER_SWEEP to a file from generate_bpe_fixtures.py --sweep"))
    func matchesThePreTokenizersOnEveryCodePoint() throws {
        let path = try #require(ProcessInfo.processInfo.environment["BPE_PRE_TOKENIZER_SWEEP"])
        let preTokenizers = try ["bpe-1000", "bpe-8000", "bpe-added", "bpe-digits"].map {
            try ByteLevelBPETokenizer(contentsOf: fixtureURL($0)).settings.preTokenizer
        }
        var mismatches: [String] = []
        let checked = try forEachSweepLine(path) { c, fields in
            // The probe of the script: f"{c}a{c}1{c} {c}  {c}!{c}\n{c}{c}'{c}".
            let probe: [Unicode.Scalar] = [c, "a", c, "1", c, " ", c, " ", " ", c, "!", c, "\n", c, c, "'", c]
            for (index, preTokenizer) in preTokenizers.enumerated() {
                var lengths: [String] = []
                preTokenizer.forEachPreToken(of: probe) { lengths.append(String($0.count)) }
                if lengths.joined(separator: ",") != fields[index + 1] { mismatches.append("U+\(fields[0]) (\(index))") }
            }
        }
        #expect(checked > 1_000_000)
        #expect(mismatches.isEmpty, "\(mismatches.count) differ: \(mismatches.prefix(20))")
    }
}
