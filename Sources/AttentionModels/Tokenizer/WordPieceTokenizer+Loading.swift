import Attention
import Foundation

extension WordPieceTokenizer {
    /// Reads the tokenizer of a Hugging Face model folder: the vocabulary from `vocab.txt` (or
    /// the `model.vocab` of `tokenizer.json` when there is no `vocab.txt`), and the settings from
    /// `tokenizer.json` (its `BertNormalizer`, `BertPreTokenizer`, `WordPiece` model and special
    /// `added_tokens`) or, without one, from `tokenizer_config.json` (`do_lower_case`,
    /// `tokenize_chinese_chars`, `strip_accents`, `unk_token`, `cls_token`, `sep_token`, ...).
    ///
    /// - Throws: `ModelError.missingFile` when neither `vocab.txt` nor `tokenizer.json` exists,
    ///   `.invalidFile` for malformed files, `.unsupported` naming a normaliser, pre-tokeniser,
    ///   model type or added-token option other than BERT's.
    public init(contentsOf folder: URL) throws(ModelError) {
        let tokenizerURL = folder.appendingPathComponent("tokenizer.json")
        let vocabularyURL = folder.appendingPathComponent("vocab.txt")
        let hasTokenizerJSON = FileManager.default.fileExists(atPath: tokenizerURL.path)
        guard hasTokenizerJSON || FileManager.default.fileExists(atPath: vocabularyURL.path) else {
            throw .missingFile(path: vocabularyURL.path)
        }
        if hasTokenizerJSON {
            try self.init(tokenizerJSON: JSONFile(contentsOf: tokenizerURL, name: "tokenizer.json"), folder: folder)
        } else {
            let configURL = folder.appendingPathComponent("tokenizer_config.json")
            let config =
                FileManager.default.fileExists(atPath: configURL.path)
                ? try JSONFile(contentsOf: configURL, name: "tokenizer_config.json")
                : JSONFile(name: "tokenizer_config.json", members: [:])
            let lowercase = try config.boolean("do_lower_case") ?? true
            try self.init(
                vocabulary: Self.readVocabulary(vocabularyURL),
                normalizer: BertNormalizer(
                    handleChineseCharacters: try config.boolean("tokenize_chinese_chars") ?? true,
                    stripAccents: try config.boolean("strip_accents"), lowercase: lowercase),
                unknownToken: try config.string("unk_token") ?? "[UNK]",
                classToken: try config.string("cls_token") ?? "[CLS]",
                separatorToken: try config.string("sep_token") ?? "[SEP]")
        }
    }

    /// The settings of a `tokenizer.json`; the vocabulary from `vocab.txt` when present.
    private init(tokenizerJSON file: JSONFile, folder: URL) throws(ModelError) {
        func require(_ section: String, type expected: String) throws(ModelError) -> JSONFile {
            guard let object = try file.object(section) else {
                throw .invalidFile(file: file.name, reason: "no \(section)")
            }
            let type = try object.string("type") ?? ""
            guard type == expected else {
                throw .unsupported(file: file.name, setting: "\(section).type", value: type, supported: [expected])
            }
            return object
        }
        let normalizer = try require("normalizer", type: "BertNormalizer")
        _ = try require("pre_tokenizer", type: "BertPreTokenizer")
        let model = try require("model", type: "WordPiece")
        let unknownToken = try model.string("unk_token") ?? "[UNK]"

        var specialTokens: [String] = []
        for (index, token) in (try file.objects("added_tokens") ?? []).enumerated() {
            guard let content = try token.string("content") else {
                throw .invalidFile(file: file.name, reason: "added_tokens[\(index)] has no content")
            }
            for option in ["lstrip", "rstrip", "single_word", "normalized"] where try token.boolean(option) == true {
                throw .unsupported(
                    file: file.name, setting: "added_tokens[\(index)].\(option)", value: "true", supported: ["false"])
            }
            specialTokens.append(content)
        }

        let vocabularyURL = folder.appendingPathComponent("vocab.txt")
        let vocabulary =
            FileManager.default.fileExists(atPath: vocabularyURL.path)
            ? try Self.readVocabulary(vocabularyURL)
            : try Self.vocabulary(fromModel: model)
        let special = Set(specialTokens)
        let classToken = special.contains("[CLS]") ? "[CLS]" : "<s>"
        let separatorToken = special.contains("[SEP]") ? "[SEP]" : "</s>"
        try self.init(
            vocabulary: vocabulary,
            normalizer: BertNormalizer(
                cleanText: try normalizer.boolean("clean_text") ?? true,
                handleChineseCharacters: try normalizer.boolean("handle_chinese_chars") ?? true,
                stripAccents: try normalizer.boolean("strip_accents"),
                lowercase: try normalizer.boolean("lowercase") ?? true),
            unknownToken: unknownToken, classToken: classToken, separatorToken: separatorToken,
            specialTokens: specialTokens,
            continuingSubwordPrefix: try model.string("continuing_subword_prefix") ?? "##",
            maxInputCharactersPerWord: try model.integer("max_input_chars_per_word") ?? 100)
    }

    /// `vocab.txt`: one token per line (`\n`, an optional `\r` before it removed), line i is id i.
    static func readVocabulary(_ url: URL) throws(ModelError) -> [String] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .invalidFile(file: url.lastPathComponent, reason: "cannot be read (\(error.localizedDescription))")
        }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        var vocabulary: [String] = []
        vocabulary.reserveCapacity(lines.count)
        for (number, line) in lines.enumerated() {
            let bytes = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
            guard let token = String(bytes: bytes, encoding: .utf8) else {
                throw .invalidFile(file: url.lastPathComponent, reason: "line \(number + 1) is not UTF-8")
            }
            vocabulary.append(token)
        }
        guard !vocabulary.isEmpty else { throw .invalidFile(file: url.lastPathComponent, reason: "is empty") }
        return vocabulary
    }

    /// The `vocab` object of a `WordPiece` model section: token → id, ids `0..<count`.
    private static func vocabulary(fromModel model: JSONFile) throws(ModelError) -> [String] {
        guard case let .object(entries)? = model.members["vocab"], !entries.isEmpty else {
            throw .invalidFile(file: model.name, reason: "model.vocab must be a non-empty object")
        }
        var vocabulary = [String?](repeating: nil, count: entries.count)
        for (token, value) in entries {
            guard let id = value.integer, vocabulary.indices.contains(id),
                vocabulary[id] == nil
            else {
                throw .invalidFile(
                    file: model.name,
                    reason: "model.vocab[\"\(token)\"] must be a distinct id in 0..<\(entries.count), got \(value.summary)")
            }
            vocabulary[id] = token
        }
        return vocabulary.map { $0! }
    }
}
