import Attention

/// The keys and values a Llama model has computed so far, for several sequences at once: per
/// layer, one key and one value tensor `(batchSize, capacity, keyValueHeads, headSize)` allocated
/// once, written in place as tokens arrive and read in place by the attention kernel (no copy
/// per step). Sequence b holds its first ``lengths``[b] positions.
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
    /// The number of positions each sequence holds.
    public internal(set) var lengths: [Int]
    /// Per layer, `(batchSize, capacity, keyValueHeads, headSize)`.
    var keys: [Tensor]
    /// Per layer, `(batchSize, capacity, keyValueHeads, headSize)`.
    var values: [Tensor]

    /// The type the keys and values are stored in (new ones are rounded to it on write).
    public let dtype: Tensor.DType

    /// An empty cache for `configuration`'s layers, stored as `dtype` (f32 by default; f16 and
    /// bf16 halve its memory and the bytes each decoding step reads).
    ///
    /// - Throws: `ModelError.invalidArgument` (`"batchSize"`, `"capacity"`) for a value below 1;
    ///   `AttentionError.overflow` or `.outOfMemory` when the tensors cannot be allocated.
    public init(configuration: LlamaConfiguration, batchSize: Int, capacity: Int, dtype: Tensor.DType = .float32) throws {
        for (name, value) in [("batchSize", batchSize), ("capacity", capacity)] where value < 1 {
            throw ModelError.invalidArgument(argument: name, reason: "must be at least 1, got \(value)")
        }
        self.batchSize = batchSize
        self.capacity = capacity
        self.dtype = dtype
        lengths = Array(repeating: 0, count: batchSize)
        let shape = [batchSize, capacity, configuration.keyValueHeadCount, configuration.headSize]
        keys = try (0..<configuration.layerCount).map { _ in try Tensor(zeros: shape, dtype: dtype) }
        values = try (0..<configuration.layerCount).map { _ in try Tensor(zeros: shape, dtype: dtype) }
    }

    /// Forgets every sequence's positions (the memory is kept for the next prompts).
    public mutating func reset() {
        lengths = Array(repeating: 0, count: batchSize)
    }

    /// Writes the new keys and values of one layer: `(batchSize, rows, keyValueHeads, headSize)`,
    /// the first `counts[b]` rows of sequence b going to its positions `lengths[b]...`, rounded to
    /// the cache's type.
    mutating func append(layer: Int, keys newKeys: Tensor, values newValues: Tensor, counts: [Int]) throws {
        let rows = newKeys.shape[1]
        let rowBytes = newKeys.shape[2] * newKeys.shape[3] * dtype.byteSize
        let (lengths, capacity) = (self.lengths, self.capacity)
        func write(_ new: Tensor, into target: inout Tensor) throws {
            let source = try new.converted(to: dtype)
            target.withUnsafeMutableRawBufferPointer { cache in
                source.withUnsafeRawBufferPointer { new in
                    for (sequence, count) in counts.enumerated() where count > 0 {
                        let from = sequence * rows * rowBytes
                        let to = (sequence * capacity + lengths[sequence]) * rowBytes
                        (cache.baseAddress! + to).copyMemory(from: new.baseAddress! + from, byteCount: count * rowBytes)
                    }
                }
            }
        }
        try write(newKeys, into: &keys[layer])
        try write(newValues, into: &values[layer])
    }
}
