import Attention
import Foundation

extension ByteLevelBPETokenizer {
    /// Writes the tokenizer as `tokenizer.json` in `folder` (created when missing), in the format
    /// of the `tokenizers` library, which reads it back, as `transformers`' `AutoTokenizer` does
    /// from the folder: the same sections, the merges as `["a", "b"]` pairs, compact JSON with
    /// the keys of each object sorted. Reading the file gives back this tokenizer. The file is
    /// written atomically (to a temporary name, then renamed).
    ///
    /// ```swift
    /// try ByteLevelBPETokenizer.plainBytes.write(to: URL(fileURLWithPath: "models/bytes"))
    /// ```
    ///
    /// - Throws: `ModelError.invalidArgument` (`"folder"`) when the folder or the file cannot be
    ///   written.
    public func write(to folder: URL) throws(ModelError) {
        let bytes = Data((json.serialized + "\n").utf8)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try bytes.write(to: folder.appendingPathComponent("tokenizer.json"), options: .atomic)
        } catch {
            throw .invalidArgument(
                argument: "folder", reason: "cannot write tokenizer.json in \(folder.path) (\(error.localizedDescription))")
        }
    }

    /// The `tokenizer.json` document.
    var json: JSONValue {
        let byteLevelDecoder = JSONValue.object([
            "type": .string("ByteLevel"), "add_prefix_space": .bool(true), "trim_offsets": .bool(true),
            "use_regex": .bool(true),
        ])
        return .object([
            "version": .string("1.0"),
            "truncation": .null,
            "padding": .null,
            "added_tokens": .array(addedTokens.map(Self.json(of:))),
            "normalizer": settings.normalizesToNFC ? .object(["type": .string("NFC")]) : .null,
            "pre_tokenizer": Self.json(of: settings.preTokenizer),
            "post_processor": settings.postProcessor.json,
            "decoder": byteLevelDecoder,
            "model": modelJSON,
        ])
    }

    /// The `model` section.
    private var modelJSON: JSONValue {
        var vocabulary: [String: JSONValue] = [:]
        vocabulary.reserveCapacity(self.vocabulary.count)
        for (id, token) in self.vocabulary.enumerated() { vocabulary[token] = JSONValue(id) }
        let merges = merges.map { JSONValue.array([.string(self.vocabulary[Int($0.left)]), .string(self.vocabulary[Int($0.right)])]) }
        return .object([
            "type": .string("BPE"),
            "dropout": .null,
            "unk_token": settings.unknownToken.map(JSONValue.string) ?? .null,
            "continuing_subword_prefix": .null,
            "end_of_word_suffix": .null,
            "fuse_unk": .bool(settings.fusesUnknown),
            "byte_fallback": .bool(false),
            "ignore_merges": .bool(settings.ignoresMerges),
            "vocab": .object(vocabulary),
            "merges": .array(merges),
        ])
    }

    private static func json(of token: AddedToken) -> JSONValue {
        .object([
            "id": JSONValue(token.id), "content": .string(token.content), "single_word": .bool(token.isSingleWord),
            "lstrip": .bool(token.stripsLeft), "rstrip": .bool(token.stripsRight),
            "normalized": .bool(token.isNormalized), "special": .bool(token.isSpecial),
        ])
    }

    /// `ByteLevel`, or a `Sequence` of the steps and `ByteLevel`.
    private static func json(of preTokenizer: ByteLevelPreTokenizer) -> JSONValue {
        let byteLevel = JSONValue.object([
            "type": .string("ByteLevel"), "add_prefix_space": .bool(preTokenizer.addsPrefixSpace),
            "trim_offsets": .bool(preTokenizer.trimsOffsets), "use_regex": .bool(preTokenizer.usesGPT2Pattern),
        ])
        if preTokenizer.steps.isEmpty { return byteLevel }
        let steps = preTokenizer.steps.map { step -> JSONValue in
            switch step {
            case let .split(pattern):
                .object([
                    "type": .string("Split"), "pattern": .object(["Regex": .string(pattern.rawValue)]),
                    "behavior": .string("Isolated"), "invert": .bool(false),
                ])
            case .individualDigits:
                .object(["type": .string("Digits"), "individual_digits": .bool(true)])
            }
        }
        return .object(["type": .string("Sequence"), "pretokenizers": .array(steps + [byteLevel])])
    }
}
