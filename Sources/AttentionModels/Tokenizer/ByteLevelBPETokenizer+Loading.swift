import Attention
import Foundation

extension ByteLevelBPETokenizer {
    /// Reads the `tokenizer.json` of a Hugging Face model folder: the `BPE` model (`vocab`,
    /// `merges` as `"a b"` strings or `["a", "b"]` pairs, `unk_token`, `fuse_unk`,
    /// `ignore_merges`), `added_tokens`, the normaliser (none or `NFC`), the pre-tokenizer
    /// (`ByteLevel`, alone or last in a `Sequence` after `Split` on GPT-2's, Llama 3's or Qwen2's
    /// pattern, or `Digits` with individual digits), the post-processor (none, `ByteLevel`,
    /// `TemplateProcessing` or a `Sequence` of them) and the `ByteLevel` decoder. `truncation`
    /// and `padding` are not applied: the ids are those of one text encoded whole.
    ///
    /// - Throws: `ModelError.missingFile` when there is no `tokenizer.json`, `.invalidFile` for a
    ///   malformed one (naming the key: `model.merges[12]`), `.unsupported` naming a setting
    ///   this tokenizer does not implement (`pre_tokenizer.pretokenizers[0].type`, ...).
    public init(contentsOf folder: URL) throws(ModelError) {
        try self.init(contentsOfFile: folder.appendingPathComponent("tokenizer.json"))
    }

    /// Reads a `tokenizer.json` file at `url`, whatever its name, as
    /// ``init(contentsOf:)`` reads a folder's.
    ///
    /// - Throws: as ``init(contentsOf:)``, the errors naming the file by its name.
    public init(contentsOfFile url: URL) throws(ModelError) {
        let file = try JSONFile(contentsOf: url, name: url.lastPathComponent)
        let model = try Self.section("model", of: file, types: ["BPE"])
        guard case let .object(entries)? = model.members["vocab"], !entries.isEmpty else {
            throw .invalidFile(file: file.name, reason: "model.vocab must be a non-empty object")
        }
        var vocabulary = [String?](repeating: nil, count: entries.count)
        for (token, value) in entries {
            guard let id = value.integer, vocabulary.indices.contains(id), vocabulary[id] == nil else {
                throw .invalidFile(
                    file: file.name,
                    reason: "model.vocab[\"\(token)\"] must be a distinct id in 0..<\(entries.count), got \(value.summary)")
            }
            vocabulary[id] = token
        }
        let settings = try Self.settings(of: file, model: model)
        if let unknownToken = settings.unknownToken, entries[unknownToken] == nil {
            throw .invalidFile(file: file.name, reason: "model.unk_token \"\(unknownToken)\" is not in model.vocab")
        }
        try self.init(
            vocabulary: vocabulary.map { $0! }, merges: Self.merges(of: model), addedTokens: Self.addedTokens(of: file),
            settings: settings, names: .file, problem: { .invalidFile(file: file.name, reason: "\($0): \($1)") })
    }

    /// The section `key` of `file`, an object whose `type` is one of `types`.
    private static func section(_ key: String, of file: JSONFile, types: [String]) throws(ModelError) -> JSONFile {
        guard let object = try file.object(key) else {
            throw .unsupported(file: file.name, setting: key, value: "null", supported: types)
        }
        _ = try object.choice("type", default: "", supported: types, setting: "\(key).type")
        return object
    }

    /// Everything but the vocabulary, the merges and the added tokens.
    private static func settings(of file: JSONFile, model: JSONFile) throws(ModelError) -> Settings {
        func refuse(_ setting: String, _ value: String, supported: [String]) -> ModelError {
            .unsupported(file: file.name, setting: setting, value: value, supported: supported)
        }
        if let dropout = try model.number("dropout"), dropout != 0 {
            throw refuse("model.dropout", "\(dropout)", supported: ["null", "0"])
        }
        if try model.boolean("byte_fallback") == true { throw refuse("model.byte_fallback", "true", supported: ["false"]) }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let affix = try model.string(key), !affix.isEmpty {
                throw refuse("model.\(key)", affix, supported: ["null", "\"\""])
            }
        }
        let normalizesToNFC = try file.object("normalizer") != nil
        if normalizesToNFC { _ = try section("normalizer", of: file, types: ["NFC"]) }
        _ = try section("decoder", of: file, types: ["ByteLevel"])
        return Settings(
            normalizesToNFC: normalizesToNFC, preTokenizer: try preTokenizer(of: file),
            postProcessor: try postProcessor(of: file), unknownToken: try model.string("unk_token"),
            fusesUnknown: try model.boolean("fuse_unk") ?? false, ignoresMerges: try model.boolean("ignore_merges") ?? false)
    }

    /// `pre_tokenizer`: `ByteLevel`, or a `Sequence` of `Split` and `Digits` steps ending with it.
    private static func preTokenizer(of file: JSONFile) throws(ModelError) -> ByteLevelPreTokenizer {
        let section = try section("pre_tokenizer", of: file, types: ["ByteLevel", "Sequence"])
        var byteLevel = section
        var steps: [ByteLevelPreTokenizer.Step] = []
        if try section.string("type") == "Sequence" {
            let elements = try section.objects("pretokenizers") ?? []
            for (index, element) in elements.enumerated() {
                let key = "pre_tokenizer.pretokenizers[\(index)]"
                let last = index == elements.count - 1
                let type = try element.choice(
                    "type", default: "", supported: last ? ["ByteLevel"] : ["Split", "Digits"], setting: "\(key).type")
                if last {
                    byteLevel = element
                } else {
                    steps.append(try step(type, element, key: key, file: file))
                }
            }
            if elements.isEmpty {
                throw .unsupported(
                    file: file.name, setting: "pre_tokenizer.pretokenizers", value: "[]", supported: ["[..., ByteLevel]"])
            }
        }
        return ByteLevelPreTokenizer(
            steps: steps, addsPrefixSpace: try byteLevel.boolean("add_prefix_space") ?? true,
            usesGPT2Pattern: try byteLevel.boolean("use_regex") ?? true,
            trimsOffsets: try byteLevel.boolean("trim_offsets") ?? true)
    }

    /// A `Split` (on a known pattern, each match isolated) or `Digits` (individual digits) step.
    private static func step(
        _ type: String, _ element: JSONFile, key: String, file: JSONFile
    ) throws(ModelError) -> ByteLevelPreTokenizer.Step {
        func refuse(_ setting: String, _ value: String, supported: [String]) -> ModelError {
            .unsupported(file: file.name, setting: "\(key).\(setting)", value: value, supported: supported)
        }
        if type == "Digits" {
            guard try element.boolean("individual_digits") == true else {
                throw refuse("individual_digits", "false", supported: ["true"])
            }
            return .individualDigits
        }
        _ = try element.choice("behavior", default: "", supported: ["Isolated"], setting: "\(key).behavior")
        if try element.boolean("invert") == true { throw refuse("invert", "true", supported: ["false"]) }
        let supported = PreTokenizerPattern.allCases.map(\.rawValue)
        guard let regex = try element.object("pattern")?.string("Regex") else {
            throw refuse("pattern", "not a Regex", supported: supported)
        }
        guard let pattern = PreTokenizerPattern(rawValue: regex) else { throw refuse("pattern.Regex", regex, supported: supported) }
        return .split(pattern)
    }

    /// `post_processor`: none, `ByteLevel` (offsets only), `TemplateProcessing`, or a `Sequence`
    /// of those.
    private static func postProcessor(of file: JSONFile) throws(ModelError) -> PostProcessor {
        guard let section = try file.object("post_processor") else { return PostProcessor() }
        var result = PostProcessor(json: file.members["post_processor"] ?? .null)
        let types = ["ByteLevel", "TemplateProcessing", "Sequence"]
        let type = try section.choice("type", default: "", supported: types, setting: "post_processor.type")
        let elements =
            type == "Sequence"
            ? try (section.objects("processors") ?? []).enumerated().map { ("post_processor.processors[\($0)]", $1) }
            : [("post_processor", section)]
        for (key, element) in elements {
            let type = try element.choice(
                "type", default: "", supported: ["ByteLevel", "TemplateProcessing"], setting: "\(key).type")
            if type == "TemplateProcessing" {
                (result.idsBefore, result.idsAfter) = try template(element, key: key, file: file)
            }
        }
        return result
    }

    /// The ids `TemplateProcessing`'s `single` template puts before and after the text (`$A`).
    private static func template(
        _ section: JSONFile, key: String, file: JSONFile
    ) throws(ModelError) -> (before: [Int], after: [Int]) {
        func invalid(_ reason: String) -> ModelError { .invalidFile(file: file.name, reason: "\(key).\(reason)") }
        let specialTokens = try section.object("special_tokens")
        var before: [Int] = []
        var after: [Int] = []
        var sawSequence = false
        for (index, item) in (try section.objects("single") ?? []).enumerated() {
            if let sequence = try item.object("Sequence") {
                guard try sequence.string("id") == "A", !sawSequence else {
                    throw invalid("single[\(index)] must be the one Sequence A of a single text")
                }
                sawSequence = true
            } else if let name = try item.object("SpecialToken")?.string("id") {
                guard let ids = try specialTokens?.object(name)?.integers("ids") else {
                    throw invalid("special_tokens has no ids for \"\(name)\"")
                }
                if sawSequence { after += ids } else { before += ids }
            } else {
                throw invalid("single[\(index)] must be a Sequence or a SpecialToken")
            }
        }
        guard sawSequence else { throw invalid("single has no Sequence A") }
        return (before, after)
    }

    /// `model.merges`: `"a b"` strings or `["a", "b"]` pairs.
    private static func merges(of model: JSONFile) throws(ModelError) -> [(String, String)] {
        guard let value = model.members["merges"], value != .null else { return [] }
        guard case let .array(elements) = value else {
            throw .invalidFile(file: model.name, reason: "model.merges must be an array, got \(value.summary)")
        }
        var result: [(String, String)] = []
        result.reserveCapacity(elements.count)
        for (rank, element) in elements.enumerated() {
            switch element {
            case let .string(line):
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                if parts.count == 2 {
                    result.append((String(parts[0]), String(parts[1])))
                    continue
                }
            case let .array(pair):
                if pair.count == 2, case let .string(left) = pair[0], case let .string(right) = pair[1] {
                    result.append((left, right))
                    continue
                }
            default:
                break
            }
            throw .invalidFile(
                file: model.name,
                reason: "model.merges[\(rank)] must be \"a b\" or [\"a\", \"b\"], got \(element.summary)")
        }
        return result
    }

    /// `added_tokens`, each with its `id`, `content` and options.
    private static func addedTokens(of file: JSONFile) throws(ModelError) -> [AddedToken] {
        var result: [AddedToken] = []
        for (index, token) in (try file.objects("added_tokens") ?? []).enumerated() {
            guard let id = try token.integer("id"), let content = try token.string("content") else {
                throw .invalidFile(file: file.name, reason: "added_tokens[\(index)] needs an id and a content")
            }
            result.append(
                AddedToken(
                    id: id, content: content, isSpecial: try token.boolean("special") ?? false,
                    isSingleWord: try token.boolean("single_word") ?? false,
                    stripsLeft: try token.boolean("lstrip") ?? false, stripsRight: try token.boolean("rstrip") ?? false,
                    isNormalized: try token.boolean("normalized")))
        }
        return result
    }
}
