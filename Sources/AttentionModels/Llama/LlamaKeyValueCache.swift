import Attention

/// The keys and values a Llama model has computed so far, for several sequences at once: one
/// `KeyValueCache` (of `Attention`) per layer, `(batchSize, capacity, keyValueHeads, headSize)`, allocated once,
/// written in place as tokens arrive and read in place by the attention kernel (no copy per
/// step). Sequence b holds its first ``lengths``[b] positions.
///
/// ```swift
/// var cache = try model.makeCache(batchSize: 2, capacity: 640)
/// let last = try model([[1, 2, 3], [4, 5]], cache: &cache)   // prefill: (2, vocabularySize)
/// let next = try model([[7], [9]], cache: &cache)           // one token each
/// print(cache.lengths)                                      // [4, 3]
/// ```
public struct LlamaKeyValueCache: Sendable {
    /// The number of sequences.
    public let batchSize: Int
    /// The most positions any sequence can hold.
    public let capacity: Int
    /// The type the keys and values are stored in (new ones are rounded to it on write).
    public let dtype: Tensor.DType
    /// One cache per layer, `[batchSize]` sequences of `capacity` positions.
    var layers: [KeyValueCache]

    /// The number of positions each sequence holds.
    public var lengths: [Int] { layers.first?.lengths ?? Array(repeating: 0, count: batchSize) }

    /// An empty cache for `configuration`'s layers, stored as `dtype` (f32 by default; f16 and
    /// bf16 halve its memory and the bytes each decoding step reads).
    ///
    /// - Throws: `ModelError.invalidArgument` (`"batchSize"`, `"capacity"`) for a value below 1;
    ///   `AttentionError.overflow` or `.outOfMemory` when the tensors cannot be allocated.
    public init(configuration: LlamaConfiguration, batchSize: Int, capacity: Int, dtype: Tensor.DType = .float32) throws {
        for (name, value) in [("batchSize", batchSize), ("capacity", capacity)] where value < 1 {
            throw ModelError.invalidArgument(argument: name, reason: "must be at least 1, got \(value)")
        }
        (self.batchSize, self.capacity, self.dtype) = (batchSize, capacity, dtype)
        layers = try (0..<configuration.layerCount).map { _ in
            try KeyValueCache(
                batchShape: [batchSize], maxLength: capacity, heads: configuration.keyValueHeadCount,
                headDimension: configuration.headSize, dtype: dtype)
        }
    }

    /// Forgets every sequence's positions (the memory is kept for the next prompts, zeroed).
    public mutating func reset() {
        for index in layers.indices { layers[index].reset() }
    }
}
