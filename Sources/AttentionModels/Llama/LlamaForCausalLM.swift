import Attention
import Foundation

/// A Llama decoder with its language-model head (`transformers`' `LlamaForCausalLM`), read from a
/// Hugging Face model folder, running over a ``LlamaKeyValueCache``.
///
/// ```
/// x = embed_tokens[ids]
/// x = layer(x) for each of the layers        (RMSNorm → attention with RoPE → residual,
///                                             RMSNorm → SwiGLU → residual)
/// logits = lm_head(norm(x))                  (lm_head = embed_tokens when tied)
/// ```
///
/// A call takes each sequence's new tokens, appends their keys and values to the cache, and
/// returns logits: a whole prompt in one call (prefill), then one token per call (decode), for
/// several sequences at once with their own lengths.
///
/// ```swift
/// let model = try LlamaForCausalLM(contentsOf: URL(fileURLWithPath: "models/tiny-llama"))
/// var cache = try model.makeCache(batchSize: 1, capacity: 64)
/// var logits = try model([[1, 15043, 29892]], cache: &cache)   // (1, vocabularySize)
/// logits = try model([[3186]], cache: &cache)                    // the next position
/// ```
public struct LlamaForCausalLM: ParameterizedModule, Equatable {
    /// The sizes and settings.
    public let configuration: LlamaConfiguration
    /// The token embedding, `(vocabularySize, hiddenSize)` (`model.embed_tokens.weight`).
    public var embedding: Tensor
    var layers: [LlamaDecoderLayer]
    var norm: RMSNorm
    /// `nil` when the head is tied to the embedding.
    var head: Linear?
    /// `transformers`' default rope: half-split pairs, frequencies and angles in `Float`.
    let rotary: RotaryPositionalEmbedding

    /// How the projections and the LM head multiply by `bfloat16` matrices:
    /// `MatrixProducts.bfloat16` (each input rounded to bf16, as `transformers` runs a bf16
    /// checkpoint, and over a bf16 cache the queries too; about twice as fast for prompts on CPUs
    /// with AVX512_BF16) or `MatrixProducts.float32` (the inputs kept in f32: closer to an f32
    /// model). Starts as `.bfloat16` when the matrices are bf16; other types always multiply in f32.
    public var products: MatrixProducts

    /// Which positions a call returns logits for.
    public enum LogitPositions: Sendable, Equatable, Hashable {
        /// The last new token of each sequence: `(batchSize, vocabularySize)`.
        case last
        /// Every new token: `(batchSize, rows, vocabularySize)`, `rows` the most new tokens of any
        /// sequence; rows past a sequence's own count are padding.
        case all
    }

    /// Reads `config.json` and the weights (`model.safetensors`, or the shards listed by
    /// `model.safetensors.index.json`) of a Hugging Face model folder.
    ///
    /// The matrices (embedding, projections, LM head) stay in the checkpoint's type (f32, f16 or
    /// bf16; f32 for any other) unless `weightDType` asks for another, and run on the
    /// half-precision kernels (activations, norms and biases are f32).
    ///
    /// - Throws: the errors of ``LlamaConfiguration/init(contentsOf:)``;
    ///   `ModelError.missingFile` without weights; `.missingTensor` or `.tensorShape` naming the
    ///   first parameter absent or of another shape than the configuration implies;
    ///   `AttentionError.invalidCheckpoint` for a malformed file.
    public init(contentsOf folder: URL, weightDType: Tensor.DType? = nil) throws {
        let configuration = try LlamaConfiguration(contentsOf: folder.appendingPathComponent("config.json"))
        try self.init(configuration: configuration, checkpoint: LlamaCheckpoint(folder: folder), weightDType: weightDType)
    }

    /// Builds a model from one checkpoint with `transformers`' parameter names; other tensors
    /// (`lm_head.weight` of a tied model, rotary buffers) are ignored.
    ///
    /// - Parameters:
    ///   - configuration: the model's `config.json`.
    ///   - checkpoint: the weights (one file, or a sharded checkpoint's files read as one).
    ///   - file: how errors name the checkpoint.
    ///   - weightDType: the type of the matrices; `nil` (the default) keeps each as stored.
    /// - Throws: `ModelError.missingTensor` or `.tensorShape` naming the first parameter absent or
    ///   of another shape than `configuration` implies.
    public init(
        configuration: LlamaConfiguration, checkpoint: SafeTensors, file: String = "model.safetensors",
        weightDType: Tensor.DType? = nil
    ) throws {
        try self.init(configuration: configuration, checkpoint: LlamaCheckpoint(checkpoint, file: file), weightDType: weightDType)
    }

    init(configuration c: LlamaConfiguration, checkpoint: some LlamaWeightSource, weightDType: Tensor.DType?) throws {
        configuration = c
        let matrix = [c.vocabularySize, c.hiddenSize]
        embedding = try checkpoint.tensor("model.embed_tokens.weight", shape: matrix, dtype: weightDType)
        layers = try (0..<c.layerCount).map { index in
            try LlamaDecoderLayer(
                configuration: c, checkpoint: checkpoint, prefix: "model.layers.\(index)", weightDType: weightDType)
        }
        norm = try RMSNorm(
            weight: checkpoint.tensor("model.norm.weight", shape: [c.hiddenSize], dtype: .float32),
            epsilon: c.rmsNormEpsilon)
        head = c.tieWordEmbeddings
            ? nil : try Linear(weight: checkpoint.tensor("lm_head.weight", shape: matrix, dtype: weightDType))
        rotary = try RotaryPositionalEmbedding(embeddingSize: c.headSize, theta: c.ropeTheta, anglePrecision: .float)
        products = embedding.dtype == .bfloat16 ? .bfloat16 : .float32
    }

    /// `transformers`' names: `model.embed_tokens.weight`, `model.layers.N.*`, `model.norm.weight`,
    /// and `lm_head.weight` unless tied.
    public var parameterPaths: [ParameterPath<LlamaForCausalLM>] {
        var paths: [ParameterPath<LlamaForCausalLM>] = [ParameterPath("model.embed_tokens.weight", \.embedding)]
        for index in layers.indices {
            paths += parameterPaths(of: \.layers[index], prefixedBy: "model.layers.\(index)")
        }
        paths += parameterPaths(of: \.norm, prefixedBy: "model.norm")
        if head != nil { paths += parameterPaths(of: \.head!, prefixedBy: "lm_head") }
        return paths
    }

    /// The type of the matrices (the embedding's).
    public var weightDType: Tensor.DType { embedding.dtype }

    /// The matrices: the embedding, every projection and the LM head, the parameters
    /// ``init(contentsOf:weightDType:)`` stores as `weightDType` and `convertingWeights(to:)`
    /// converts (the norms stay float32). A bf16 copy with ``products`` `.bfloat16` trains with
    /// bf16 products over float32 master weights:
    ///
    /// ```swift
    /// var compute = try model.convertingWeights(to: .bfloat16)
    /// compute.products = .bfloat16
    /// let (logits, pullback) = try compute.callWithPullback(tokens)
    /// // ... the gradients update `model` itself
    /// ```
    public var matrixWeightNames: Set<String> {
        Set(parameterShapes.filter { $0.shape.count == 2 }.map(\.name))
    }

    /// An empty cache for this model's layers, its keys and values stored as `dtype`.
    ///
    /// - Throws: as ``LlamaKeyValueCache/init(configuration:batchSize:capacity:dtype:)``.
    public func makeCache(batchSize: Int, capacity: Int, dtype: Tensor.DType = .float32) throws -> LlamaKeyValueCache {
        try LlamaKeyValueCache(configuration: configuration, batchSize: batchSize, capacity: capacity, dtype: dtype)
    }

    /// Runs each sequence's new tokens after what `cache` holds, appends their keys and values to
    /// it, and returns the logits.
    ///
    /// - Parameters:
    ///   - tokens: one list of new token ids per sequence of the cache, each non-empty.
    ///   - cache: the cache; its lengths grow by each sequence's count.
    ///   - logits: `.last` (the default) for `(batchSize, vocabularySize)`, `.all` for
    ///     `(batchSize, rows, vocabularySize)`.
    /// - Throws: `ModelError.invalidArgument` for a batch of another size than the cache's
    ///   (`"tokens"`), an empty list or one that would overflow the cache's capacity
    ///   (`"tokens[b]"`), an id outside the vocabulary (`"tokens[b][i]"`); `AttentionError` from
    ///   the layers. On error the cache's lengths are unchanged.
    public func callAsFunction(
        _ tokens: [[Int]], cache: inout LlamaKeyValueCache, logits: LogitPositions = .last
    ) throws -> Tensor {
        try validate(tokens, cache: cache)
        let (batch, hiddenSize) = (tokens.count, configuration.hiddenSize)
        let step = try LlamaStep(
            counts: tokens.map(\.count), starts: cache.lengths, capacity: cache.capacity, products: products)
        var hidden = try embed(tokens, rows: step.rows)
        for (index, layer) in layers.enumerated() {
            hidden = try layer(hidden, step: step, rotary: rotary, cache: &cache.layers[index])
        }
        switch logits {
        case .all:
            return try project(norm(hidden))
        case .last:
            var last = try Tensor(zeros: [batch, hiddenSize])
            last.withUnsafeMutableBufferPointer { output in
                hidden.withUnsafeBufferPointer { rows in
                    for (sequence, count) in step.counts.enumerated() {
                        let from = (sequence * step.rows + count - 1) * hiddenSize
                        (output.baseAddress! + sequence * hiddenSize).update(from: rows.baseAddress! + from, count: hiddenSize)
                    }
                }
            }
            return try project(norm(last))
        }
    }

    /// The LM head: its own weight, or the embedding when tied.
    private func project(_ hidden: Tensor) throws -> Tensor {
        if let head { return try head(hidden, products: products) }
        return try Linear(weight: embedding)(hidden, products: products)
    }

    /// The embedded tokens in f32, `(batch, rows, hiddenSize)`, zeros past each sequence's count:
    /// the rows gathered in the embedding's own type, then widened.
    private func embed(_ tokens: [[Int]], rows: Int) throws -> Tensor {
        let rowBytes = configuration.hiddenSize * embedding.dtype.byteSize
        var hidden = try Tensor(zeros: [tokens.count, rows, configuration.hiddenSize], dtype: embedding.dtype)
        hidden.withUnsafeMutableRawBufferPointer { output in
            embedding.withUnsafeRawBufferPointer { table in
                for (sequence, ids) in tokens.enumerated() {
                    for (position, id) in ids.enumerated() {
                        (output.baseAddress! + (sequence * rows + position) * rowBytes)
                            .copyMemory(from: table.baseAddress! + id * rowBytes, byteCount: rowBytes)
                    }
                }
            }
        }
        return try hidden.converted(to: .float32)
    }

    private func validate(_ tokens: [[Int]], cache: LlamaKeyValueCache) throws(ModelError) {
        guard tokens.count == cache.batchSize else {
            throw .invalidArgument(
                argument: "tokens", reason: "has \(tokens.count) sequences, the cache \(cache.batchSize)")
        }
        guard cache.layers.count == layers.count,
              cache.layers.allSatisfy({ [$0.heads, $0.headDimension] == [configuration.keyValueHeadCount, configuration.headSize] })
        else {
            throw .invalidArgument(argument: "cache", reason: "was made for another model's layers or heads")
        }
        for (sequence, ids) in tokens.enumerated() {
            guard !ids.isEmpty else { throw .invalidArgument(argument: "tokens[\(sequence)]", reason: "is empty") }
            guard cache.lengths[sequence] + ids.count <= cache.capacity else {
                throw .invalidArgument(
                    argument: "tokens[\(sequence)]",
                    reason: "\(ids.count) tokens after \(cache.lengths[sequence]) exceed the cache's capacity \(cache.capacity)")
            }
            if let bad = ids.firstIndex(where: { !(0..<configuration.vocabularySize).contains($0) }) {
                throw .invalidArgument(
                    argument: "tokens[\(sequence)][\(bad)]", reason: "\(ids[bad]) is not in 0..<\(configuration.vocabularySize)")
            }
        }
    }
}
