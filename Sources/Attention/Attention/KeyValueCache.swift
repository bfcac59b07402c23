/// The keys and values an autoregressive decoder has computed so far: the one key/value cache of
/// this package, behind
/// ``MultiHeadDotProductAttention/decode(_:key:value:cache:mask:deterministic:dropoutSeed:)``
/// (Flax's `cache` collection, `cached_key`, `cached_value`, `cache_index`, as an explicit value)
/// and each layer of a Llama decoder. Every sequence of the batch holds its own number of
/// positions (``lengths``), so sequences of different lengths decode together.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let attention = try MultiHeadDotProductAttention(heads: 4, inputFeatures: 32, using: &rng)
/// var cache = try attention.makeCache(batchShape: [2], maxLength: 128)
/// for _ in 0..<10 {
///     let token = try Tensor(randomNormal: [2, 1, 32], using: &rng)     // [batch..., 1, F]
///     let y = try attention.decode(token, cache: &cache)                 // [2, 1, 32]
/// }
/// cache.index   // 10
/// ```
///
/// The keys and values are stored in the cache's ``dtype``: `float32` by default, or `float16` or
/// `bfloat16` (half the memory); each step's projected keys and values are rounded to it once
/// (to nearest even) when written, and the attention kernel reads them in place, widening exactly.
///
/// ```swift
/// var halfCache = try attention.makeCache(batchShape: [2], maxLength: 4096, dtype: .bfloat16)
/// ```
///
/// The cache is a value: a copy taken before a step (to branch, as beam search does) is not
/// changed by later steps. Steps write into the cache's storage in place when no copy shares it.
///
/// | Flax (`cache` collection) | here |
/// |---|---|
/// | `cached_key` `[batch..., max_len, H, d]` | ``key`` |
/// | `cached_value` `[batch..., max_len, H, d]` | ``value`` |
/// | `cache_index` (int32 scalar) | ``index`` |
public struct KeyValueCache: Sendable, Equatable {
    /// The cached keys, `[batch..., maxLength, H, headDimension]`: position `p < index` holds the
    /// projected (and, with `normalizeQK`, normalised) key of step position p; later slots are
    /// zeros.
    ///
    /// ```swift
    /// cache.key.shape   // [2, 128, 4, 8]
    /// ```
    public internal(set) var key: Tensor

    /// The cached values, `[batch..., maxLength, H, headDimension]`, as ``key``.
    ///
    /// ```swift
    /// cache.value.shape   // [2, 128, 4, 8]
    /// ```
    public internal(set) var value: Tensor

    /// The number of positions each sequence holds, one per sequence of the flattened batch
    /// dimensions (one for an unbatched cache): sequence b's next position is written at
    /// `lengths[b]`.
    ///
    /// ```swift
    /// cache.lengths   // [0, 0] for a new cache of batchShape [2]
    /// ```
    public internal(set) var lengths: [Int]

    /// The number of positions written (Flax's `cache_index`): the next step writes at this
    /// position. When the sequences hold different numbers of positions, the largest.
    ///
    /// ```swift
    /// cache.index   // 0 for a new cache
    /// ```
    public var index: Int { lengths.max() ?? 0 }

    /// Creates an empty cache (zeros, index 0) storing its keys and values as `dtype`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"batchShape"`, `"maxLength"`, `"heads"`,
    ///   `"headDimension"`) for a size below 1; the allocation's errors.
    public init(batchShape: [Int], maxLength: Int, heads: Int, headDimension: Int, dtype: Tensor.DType = .float32) throws {
        for (axis, size) in batchShape.enumerated() where size < 1 {
            throw AttentionError.invalidArgument(
                argument: "batchShape", reason: "dimension \(axis) of \(batchShape) is \(size); must be at least 1")
        }
        for (name, size) in [("maxLength", maxLength), ("heads", heads), ("headDimension", headDimension)]
        where size < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        let shape = batchShape + [maxLength, heads, headDimension]
        key = try Tensor(zeros: shape, dtype: dtype)
        value = try Tensor(zeros: shape, dtype: dtype)
        lengths = Array(repeating: 0, count: batchShape.reduce(1, *))
    }

    /// Creates a cache from existing contents, such as a Flax `cache` collection
    /// (`cached_key`, `cached_value`, `cache_index`).
    ///
    /// ```swift
    /// let cache = try KeyValueCache(
    ///     key: file.tensor(named: "cache.cached_key"), value: file.tensor(named: "cache.cached_value"),
    ///     index: 4)
    /// ```
    ///
    /// The cache's ``dtype`` is theirs (both the same; any of the three).
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"key"`, `"value"`) unless both are
    ///   `[batch..., maxLength, H, headDimension]` of one shape with every dimension at least 1;
    ///   `.unsupportedDType` (`"value"`) when the dtypes differ;
    ///   `.invalidArgument` (`"index"`) unless `index` is in `0...maxLength`.
    public init(key: Tensor, value: Tensor, index: Int) throws {
        guard key.rank >= 3, !key.shape.contains(where: { $0 < 1 }) else {
            throw AttentionError.shapeMismatch(
                argument: "key", expected: "[batch..., maxLength, H, headDimension], every dimension at least 1",
                actual: key.shape)
        }
        guard value.shape == key.shape else {
            throw AttentionError.shapeMismatch(argument: "value", expected: "\(key.shape), the key's shape", actual: value.shape)
        }
        guard value.dtype == key.dtype else {
            throw AttentionError.unsupportedDType(
                argument: "value", dtype: value.dtype, reason: "the cache's keys and values share one dtype; key is \(key.dtype)")
        }
        let maxLength = key.shape[key.rank - 3]
        guard (0...maxLength).contains(index) else {
            throw AttentionError.invalidArgument(argument: "index", reason: "must be in 0...\(maxLength), got \(index)")
        }
        self.key = key
        self.value = value
        lengths = Array(repeating: index, count: key.shape.dropLast(3).reduce(1, *))
    }

    /// How the keys and values are stored.
    public var dtype: Tensor.DType { key.dtype }

    /// The batch dimensions, `[batch...]`.
    public var batchShape: [Int] { Array(key.shape.dropLast(3)) }

    /// The number of positions the cache holds.
    public var maxLength: Int { key.shape[key.rank - 3] }

    /// The number of heads.
    public var heads: Int { key.shape[key.rank - 2] }

    /// The size of each head.
    public var headDimension: Int { key.shape[key.rank - 1] }

    /// The positions still free: `maxLength - index`.
    public var remaining: Int { maxLength - index }

    /// Empties the cache: every length 0, every slot zero (a freshly initialised Flax cache).
    public mutating func reset() {
        // Zero bits are +0 in every dtype.
        _ = key.withUnsafeMutableRawBufferPointer { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        _ = value.withUnsafeMutableRawBufferPointer { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        lengths = Array(repeating: 0, count: lengths.count)
    }

    /// Appends the first `counts[b]` positions of sequence b of `keys` and `values` (heads
    /// `(B, rows, H, d)` read in place, of any dtype, the heads of a position side by side as a
    /// projection gives them) at its positions `lengths[b]...`, rounded to the cache's dtype, and
    /// advances the lengths. The caller has checked the shapes and that every sequence has room.
    ///
    /// - Throws: `AttentionError` from the conversion kernel (which cannot fail for these sizes).
    mutating func append(keys: StridedHeads, values: StridedHeads, counts: [Int]) throws(AttentionError) {
        // Static: a method of self would hold a second reference to the storage being written.
        let (lengths, maxLength) = (self.lengths, self.maxLength)
        try Self.write(keys, into: &key, at: lengths, maxLength: maxLength, counts: counts)
        try Self.write(values, into: &value, at: lengths, maxLength: maxLength, counts: counts)
        for (b, count) in counts.enumerated() { self.lengths[b] += count }
    }

    /// Takes back the last `counts[b]` positions of each sequence: zeros them and shortens the
    /// lengths (a step that failed after appending).
    mutating func removeLast(_ counts: [Int]) {
        let rowBytes = heads * headDimension * dtype.byteSize, maxLength = self.maxLength
        for (b, count) in counts.enumerated() { lengths[b] -= count }
        let lengths = self.lengths
        func zero(_ target: UnsafeMutableRawBufferPointer) {
            for (b, count) in counts.enumerated() where count > 0 {
                (target.baseAddress! + (b * maxLength + lengths[b]) * rowBytes)
                    .initializeMemory(as: UInt8.self, repeating: 0, count: count * rowBytes)
            }
        }
        key.withUnsafeMutableRawBufferPointer(zero)
        value.withUnsafeMutableRawBufferPointer(zero)
    }

    /// The cached keys of every sequence's first `length` positions, as heads read in place.
    func keyHeads(length: Int) -> StridedHeads { heads(of: key, length: length) }

    /// The cached values of every sequence's first `length` positions, as heads read in place.
    func valueHeads(length: Int) -> StridedHeads { heads(of: value, length: length) }

    private func heads(of tensor: Tensor, length: Int) -> StridedHeads {
        StridedHeads(
            rows: tensor, batch: lengths.count, length: length, capacity: maxLength, rowWidth: heads * headDimension,
            heads: heads, dim: headDimension)
    }

    /// Writes sequence b's first `counts[b]` rows of `source` at its positions `lengths[b]...` of
    /// `target` (`[batch..., maxLength, H, d]`), converting each row of heads to its dtype.
    private static func write(
        _ source: StridedHeads, into target: inout Tensor, at lengths: [Int], maxLength: Int, counts: [Int]
    ) throws(AttentionError) {
        let dtype = target.dtype, row = source.width
        let size = dtype.byteSize, sourceSize = source.dtype.byteSize
        try withExtendedLifetime(source.tensor) { () throws(AttentionError) in
            let from = source.pointer!
            try target.withUnsafeMutableRawBufferPointer { (to) throws(AttentionError) in
                for (b, count) in counts.enumerated() {
                    for position in 0..<count {
                        let heads = from + (b * source.batchStride + position * source.positionStride) * sourceSize
                        let slot = to.baseAddress! + ((b * maxLength + lengths[b] + position) * row) * size
                        try convertElements(from: heads, source.dtype, to: slot, dtype, count: row)
                    }
                }
            }
        }
    }
}
