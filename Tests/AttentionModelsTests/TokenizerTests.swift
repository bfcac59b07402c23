import Foundation
import Testing
@testable import AttentionModels

/// The ids of the `tokenizers` library for the corpus of `generate_bert_fixtures.py`.
struct TokenizerCorpus: Decodable {
    var texts: [String]
    var ids: [[Int]]
    var ids_max_length_256: [[Int]]
}

@Suite struct TokenizerTests {
    let tokenizer: WordPieceTokenizer
    let corpus: TokenizerCorpus

    init() throws {
        tokenizer = try WordPieceTokenizer(contentsOf: fixtureURL("minilm-tokenizer"))
        corpus = try loadFixture(TokenizerCorpus.self, "minilm_tokenizer_ids.json")
    }

    @Test func readsTheSettingsOfTokenizerJSON() {
        #expect(tokenizer.vocabulary.count == 30522)
        #expect(tokenizer.normalizer == BertNormalizer(cleanText: true, handleChineseCharacters: true, lowercase: true))
        #expect(tokenizer.normalizer.stripAccents)
        #expect((tokenizer.unknownID, tokenizer.classID, tokenizer.separatorID) == (100, 101, 102))
        #expect(tokenizer.specialTokens == ["[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103])
        #expect(tokenizer.maxInputCharactersPerWord == 100)
    }

    @Test func matchesTheReferenceOnTheCorpus() throws {
        #expect(corpus.texts.count > 150)
        var mismatches: [String] = []
        for (index, text) in corpus.texts.enumerated() {
            let ids = try tokenizer.encode(text)
            if ids != corpus.ids[index] {
                mismatches.append("#\(index) \(text.debugDescription.prefix(60)): \(ids.prefix(20)) vs \(corpus.ids[index].prefix(20))")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) texts differ:\n\(mismatches.prefix(10).joined(separator: "\n"))")
    }

    @Test func truncatesAsTheReference() throws {
        var truncated = 0
        for (index, text) in corpus.texts.enumerated() {
            let ids = try tokenizer.encode(text, maxLength: 256)
            #expect(ids == corpus.ids_max_length_256[index], "text #\(index)")
            if corpus.ids[index].count > 256 { truncated += 1 }
        }
        #expect(truncated >= 1, "the corpus has a text longer than 256 tokens")
    }

    @Test func readsTheSameSettingsFromTokenizerConfigAlone() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wordpiece-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["vocab.txt", "tokenizer_config.json"] {
            try FileManager.default.copyItem(
                at: fixtureURL("minilm-tokenizer/\(name)"), to: folder.appendingPathComponent(name))
        }
        let fromConfig = try WordPieceTokenizer(contentsOf: folder)
        #expect(fromConfig.normalizer == tokenizer.normalizer)
        for (index, text) in corpus.texts.enumerated() {
            #expect(try fromConfig.encode(text) == corpus.ids[index], "text #\(index)")
        }
    }

    @Test func splitsWordsIntoPieces() {
        #expect(tokenizer.tokenize("Tokenizers split unaffable words.") == ["token", "##izer", "##s", "split", "una", "##ffa", "##ble", "words", "."])
        #expect(tokenizer.tokenize("") == [])
        #expect(tokenizer.tokenize("  \t\n ") == [])
        #expect(tokenizer.tokenize("a[SEP]b") == ["a", "[SEP]", "b"])
        #expect(tokenizer.tokenize(String(repeating: "x", count: 101)) == ["[UNK]"])
    }

    @Test func normalizesAsBert() {
        let normalizer = BertNormalizer()
        #expect(normalizer.normalize("Crème Brûlée\u{200B}!") == "creme brulee!")
        #expect(normalizer.normalize("東京") == " 東  京 ")
        #expect(normalizer.normalize("a\tb\u{0}c\u{FFFD}") == "a bc")
        #expect(BertNormalizer(stripAccents: true, lowercase: false).normalize("Ünïcode") == "Unicode")
        #expect(BertNormalizer(lowercase: false).normalize("Ünïcode") == "Ünïcode")
    }

    @Test func rejectsATooShortMaximumLength() throws {
        #expect(throws: ModelError.invalidArgument(
            argument: "maxLength", reason: "must be at least 2 (room for [CLS] and [SEP]), got 1")
        ) { try tokenizer.encode("hello", maxLength: 1) }
        #expect(try tokenizer.encode("hello world", maxLength: 2) == [101, 102])
    }

    @Test func reportsAMissingVocabulary() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("no-vocabulary-\(UUID().uuidString)")
        #expect(throws: ModelError.missingFile(path: folder.appendingPathComponent("vocab.txt").path)) {
            try WordPieceTokenizer(contentsOf: folder)
        }
        #expect(throws: ModelError.invalidArgument(argument: "unknownToken", reason: "\"[UNK]\" is not in the vocabulary")) {
            try WordPieceTokenizer(vocabulary: ["a", "b"])
        }
    }

    /// Every code point between two letters, against a file written by
    /// `generate_bert_fixtures.py --sweep FILE`; runs only when `BERT_TOKENIZER_SWEEP=FILE` is set.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["BERT_TOKENIZER_SWEEP"] != nil,
                   "set BERT_TOKENIZER_SWEEP to a file from generate_bert_fixtures.py --sweep"))
    func matchesTheReferenceOnEveryCodePoint() throws {
        let path = try #require(ProcessInfo.processInfo.environment["BERT_TOKENIZER_SWEEP"])
        var mismatches: [String] = []
        let checked = try forEachSweepLine(path) { scalar, fields in
            let expected = fields[1].split(separator: ",").map { Int($0)! }
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: ["a", scalar, "b"])
            if tokenizer.pieceIDs(of: String(scalars)) != expected { mismatches.append("U+\(fields[0])") }
        }
        #expect(checked > 1_000_000)
        #expect(mismatches.isEmpty, "\(mismatches.count) code points differ: \(mismatches.prefix(20))")
    }
}
