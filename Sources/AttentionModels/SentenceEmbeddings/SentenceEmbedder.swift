import Attention
import Foundation

/// Sentence embeddings as sentence-transformers computes them, from one of its model folders:
/// WordPiece tokens (cut to ``maxSequenceLength``), a BERT encoder, ``Pooling``, and an optional
/// L2 normalisation, as `modules.json` lists them.
///
/// Sentences are encoded as packed batches (``TokenBatch``): no padding, so a sentence's
/// embedding does not depend on the others it is encoded with.
///
/// ```swift
/// let embedder = try SentenceEmbedder(contentsOf: URL(fileURLWithPath: "models/all-MiniLM-L6-v2"))
/// let embeddings = try embedder.embed(["A man is eating food.", "Someone is eating a meal."])
/// // (2, 384), each row of unit length: their dot product is the cosine similarity
/// let similarity = try (embeddings[0] * embeddings[1]).sum()   // a rank-0 tensor
/// ```
public struct SentenceEmbedder: Sendable {
    /// The tokenizer of the model folder.
    public let tokenizer: WordPieceTokenizer
    /// The encoder.
    public let model: BertModel
    /// How token states become a sentence vector.
    public let pooling: Pooling
    /// Whether each embedding is scaled to unit length (a `Normalize` module).
    public let normalizesEmbeddings: Bool
    /// The most tokens of a sentence, `[CLS]` and `[SEP]` included; longer ones are cut
    /// (`max_seq_length` of `sentence_bert_config.json`).
    public let maxSequenceLength: Int

    /// The length of one embedding.
    public var dimension: Int { model.configuration.hiddenSize * pooling.modes.count }

    /// The modules of `modules.json` this pipeline runs, by the last part of their type
    /// (`sentence_transformers.models.Pooling`, or in later versions
    /// `sentence_transformers.sentence_transformer.modules.pooling.Pooling`).
    enum Module: String, CaseIterable {
        case transformer = "Transformer"
        case pooling = "Pooling"
        case normalize = "Normalize"

        init?(type: String) {
            guard type.hasPrefix("sentence_transformers."),
                let name = type.split(separator: ".").last, let module = Module(rawValue: String(name))
            else { return nil }
            self = module
        }
    }

    /// Creates a pipeline from its parts.
    ///
    /// - Parameters:
    ///   - tokenizer: turns sentences into token ids.
    ///   - model: the BERT encoder.
    ///   - pooling: how token states become one vector.
    ///   - normalizesEmbeddings: whether each embedding is scaled to unit length.
    ///   - maxSequenceLength: `nil` for the model's position count.
    /// - Throws: `ModelError.invalidArgument` (`"maxSequenceLength"`) unless it is in
    ///   `2...model.configuration.maxPositions`.
    public init(
        tokenizer: WordPieceTokenizer, model: BertModel, pooling: Pooling, normalizesEmbeddings: Bool,
        maxSequenceLength: Int? = nil
    ) throws(ModelError) {
        let positions = model.configuration.maxPositions
        let length = maxSequenceLength ?? positions
        guard length >= 2, length <= positions else {
            throw .invalidArgument(
                argument: "maxSequenceLength", reason: "must be in 2...\(positions) (the model's positions), got \(length)")
        }
        self.tokenizer = tokenizer
        self.model = model
        self.pooling = pooling
        self.normalizesEmbeddings = normalizesEmbeddings
        self.maxSequenceLength = length
    }

    /// Reads a sentence-transformers model folder: `modules.json` (a `Transformer`, a `Pooling`,
    /// optionally a `Normalize`), `sentence_bert_config.json`, the pooling folder's `config.json`,
    /// and the Hugging Face files of the transformer (`config.json`, `model.safetensors`, the
    /// tokenizer). A plain Hugging Face BERT folder without `modules.json` gets mean pooling and
    /// no normalisation, as sentence-transformers gives it.
    ///
    /// - Throws: `ModelError.missingFile`, `.invalidFile`, `.unsupported` (a module type other than
    ///   the three, such as `Dense`), and the errors of ``BertModel/init(contentsOf:precision:)`` and
    ///   ``WordPieceTokenizer/init(contentsOf:)``.
    public init(contentsOf folder: URL) throws {
        let modulesURL = folder.appendingPathComponent("modules.json")
        var transformerFolder = folder
        var poolingConfig: (url: URL, name: String)?
        var normalizes = false
        if FileManager.default.fileExists(atPath: modulesURL.path) {
            for module in try JSONFile.objects(contentsOf: modulesURL, name: "modules.json") {
                let type = try module.string("type") ?? "(none)"
                let path = try module.string("path") ?? ""
                switch Module(type: type) {
                case .transformer:
                    transformerFolder = path.isEmpty ? folder : folder.appendingPathComponent(path)
                case .pooling:
                    poolingConfig = (folder.appendingPathComponent(path).appendingPathComponent("config.json"), "\(path)/config.json")
                case .normalize:
                    normalizes = true
                case nil:
                    throw ModelError.unsupported(
                        file: "modules.json", setting: "type", value: type,
                        supported: Module.allCases.map { "sentence_transformers.models.\($0.rawValue)" })
                }
            }
        }
        let model = try BertModel(contentsOf: transformerFolder)
        let pooling =
            try poolingConfig.map {
                try Pooling(contentsOf: $0.url, name: $0.name, hiddenSize: model.configuration.hiddenSize)
            } ?? Pooling(modes: [.mean])
        let maxLength = try Self.maxSequenceLength(in: transformerFolder)
        if let maxLength, maxLength < 2 {
            throw ModelError.invalidFile(
                file: "sentence_bert_config.json", reason: "max_seq_length must be at least 2 ([CLS] and [SEP]), got \(maxLength)")
        }
        try self.init(
            tokenizer: WordPieceTokenizer(contentsOf: transformerFolder), model: model, pooling: pooling,
            normalizesEmbeddings: normalizes,
            maxSequenceLength: maxLength.map { min($0, model.configuration.maxPositions) })
    }

    /// `max_seq_length` of `sentence_bert_config.json`, or else the tokenizer's `model_max_length`
    /// (where later sentence-transformers versions keep it); `nil` when neither is set.
    private static func maxSequenceLength(in folder: URL) throws(ModelError) -> Int? {
        for (name, key) in [("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")] {
            let url = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let file = try JSONFile(contentsOf: url, name: name)
            if name == "sentence_bert_config.json", try file.boolean("do_lower_case") == true {
                throw .unsupported(file: name, setting: "do_lower_case", value: "true", supported: ["false"])
            }
            // transformers writes a huge model_max_length (1e30) for "no limit".
            if let value = file.members[key]?.double, value >= 1e9 { continue }
            if let length = try file.integer(key) { return length }
        }
        return nil
    }

    /// The token ids of each sentence, `[CLS]` and `[SEP]` included, cut to ``maxSequenceLength``.
    public func tokenize(_ sentences: [String]) throws(ModelError) -> [[Int]] {
        var result: [[Int]] = []
        result.reserveCapacity(sentences.count)
        for sentence in sentences { result.append(try tokenizer.encode(sentence, maxLength: maxSequenceLength)) }
        return result
    }

    /// The embeddings of `sentences`, one row each in order: `(sentences.count, dimension)`.
    ///
    /// - Parameters:
    ///   - sentences: the texts, tokenized as ``tokenize(_:)`` does.
    ///   - batchSize: the most sentences encoded together (their tokens packed into one
    ///     matrix); it bounds the memory, not the results.
    /// - Throws: `ModelError.invalidArgument` (`"batchSize"`) below 1; the encoder's errors.
    public func embed(_ sentences: [String], batchSize: Int = 32) throws -> Tensor {
        try embed(tokenIDs: tokenize(sentences), batchSize: batchSize)
    }

    /// The embeddings of already tokenized sentences: `(tokenIDs.count, dimension)`.
    ///
    /// - Throws: as ``embed(_:batchSize:)``, and `ModelError.invalidArgument` for an empty
    ///   sequence or an id outside the vocabulary.
    public func embed(tokenIDs: [[Int]], batchSize: Int = 32) throws -> Tensor {
        guard batchSize >= 1 else {
            throw ModelError.invalidArgument(argument: "batchSize", reason: "must be at least 1, got \(batchSize)")
        }
        if tokenIDs.isEmpty { return try Tensor(zeros: [0, dimension]) }
        var parts: [Tensor] = []
        for start in stride(from: 0, to: tokenIDs.count, by: batchSize) {
            let batch = try TokenBatch(Array(tokenIDs[start..<min(start + batchSize, tokenIDs.count)]))
            var pooled = try pooling(model(batch), batch: batch)
            if normalizesEmbeddings { pooled = try Self.normalizedRows(pooled) }
            parts.append(pooled)
        }
        return parts.count == 1 ? parts[0] : try Tensor.concatenated(parts, axis: 0)
    }

    /// Each row divided by its L2 norm (at least 1e-12), as `torch.nn.functional.normalize`.
    static func normalizedRows(_ matrix: Tensor) throws -> Tensor {
        var result = matrix
        let width = matrix.shape[1]
        result.withUnsafeMutableBufferPointer { rows in
            for start in stride(from: 0, to: rows.count, by: width) {
                var sum = 0.0
                for index in start..<(start + width) { sum += Double(rows[index]) * Double(rows[index]) }
                let norm = Float(max(sum.squareRoot(), 1e-12))
                for index in start..<(start + width) { rows[index] /= norm }
            }
        }
        return result
    }
}
