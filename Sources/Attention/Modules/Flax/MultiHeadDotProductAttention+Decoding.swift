extension MultiHeadDotProductAttention {
    /// An empty cache for decoding `[batchShape..., n, F]` inputs, holding up to `maxLength`
    /// positions of this module's heads (Flax's `module.init(rng, x)` with `decode=True` on an
    /// input of length `max_len`).
    ///
    /// `dtype` is how the cache stores the keys and values: `float32` (the default), or `float16`
    /// or `bfloat16` to halve its memory; new entries are rounded to it (to nearest even) when
    /// written, and ``decode(_:key:value:cache:mask:deterministic:dropoutSeed:)`` reads them in
    /// place.
    ///
    /// - Throws: the errors of ``KeyValueCache/init(batchShape:maxLength:heads:headDimension:dtype:)``.
    public func makeCache(batchShape: [Int], maxLength: Int, dtype: Tensor.DType = .float32) throws -> KeyValueCache {
        try KeyValueCache(
            batchShape: batchShape, maxLength: maxLength, heads: heads, headDimension: headDimension, dtype: dtype)
    }

    /// One autoregressive step (Flax's `decode=True`): appends the keys and values of `n` new
    /// positions to `cache` and attends each new query to every cached position up to its own.
    ///
    /// ```swift
    /// var cache = try attention.makeCache(batchShape: [2], maxLength: 64)
    /// let prompt = try attention.decode(promptEmbeddings, cache: &cache)   // [2, 12, F]: 12 positions at once
    /// let next = try attention.decode(token, cache: &cache)                // [2, 1, F]
    /// cache.index   // 13
    /// ```
    ///
    /// Query i of the step (0-based, of n) sees cached positions `0...cache.index + i`, so a
    /// sequence fed in steps of any sizes gives the same outputs as the whole sequence with a
    /// causal mask (`make_causal_mask`) in one call, up to rounding. Keys are normalised (with
    /// `normalizeQK`) before they are cached.
    ///
    /// With the ``AttentionFunction/fused`` or ``AttentionFunction/unfused`` attention function,
    /// the kernel reads the cache in place, only its first `cache.index + n` positions, with
    /// bottom-right causal masking: nothing is copied per step beyond the new keys and values. A
    /// custom attention function receives the whole cache, with the unwritten slots and the
    /// future masked, as Flax gives it.
    ///
    /// A half-precision cache (``KeyValueCache/dtype``) gets the new keys and values rounded to
    /// its dtype, and the kernel reads it in place (a custom function receives it in that dtype);
    /// the query, the attention output and the result stay `float32`.
    ///
    /// Differences from Flax: Flax takes one position per step (its query must have length 1)
    /// and, past `max_len`, silently overwrites the last slot; this method takes any number of
    /// positions and throws when they do not fit, leaving the cache unchanged. A query row whose
    /// every visible key is masked by `mask` gets the mean of the values of the positions up to
    /// `cache.index + n`, where Flax averages over all `max_len` slots (unwritten ones are zeros).
    ///
    /// - Parameters:
    ///   - query: `[batch..., n, inputFeatures]`, the cache's batch dimensions, n ≥ 1.
    ///   - key: `[batch..., n, keyFeatures]`; `query` when `nil`.
    ///   - value: `[batch..., n, valueFeatures]`; `key` when `nil`.
    ///   - cache: the cache, advanced by n positions.
    ///   - mask: broadcastable to `[batch..., H, n, maxLength]` over the cache's slots; `true`
    ///     attends. Combined with the causal masking.
    ///   - deterministic: as in ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)``.
    ///   - dropoutSeed: as in ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)``.
    /// - Returns: `[batch..., n, outFeatures]`.
    /// - Throws: `AttentionError.invalidArgument` (`"cache"`) when `cache.index + n` exceeds
    ///   `cache.maxLength`; `.shapeMismatch` (`"query"`, `"key"`, `"value"`) when an input does
    ///   not fit the module or the cache's batch dimensions, or the key and value lengths differ
    ///   from the query's, (`"cache"`) for a cache of other heads or head size, (`"mask"`) for a
    ///   mask that does not broadcast; otherwise as
    ///   ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)``. On error the cache
    ///   is unchanged.
    public func decode(
        _ query: Tensor, key: Tensor? = nil, value: Tensor? = nil, cache: inout KeyValueCache,
        mask: BooleanMask? = nil, deterministic: Bool? = nil, dropoutSeed: UInt64? = nil
    ) throws -> Tensor {
        try validateParameters()
        try requireFloat32Parameters()
        try requireFloat32Activations(["query": query, "key": key, "value": value])
        let (key, value, batchShape, n, lengthK) = try checkInputs(query: query, key: key, value: value)
        guard n >= 1 else {
            throw AttentionError.shapeMismatch(
                argument: "query", expected: "[batch..., n, \(inputFeatures)] with n >= 1 new positions",
                actual: query.shape)
        }
        guard lengthK == n else {
            throw AttentionError.shapeMismatch(
                argument: "key", expected: "length \(n), the query's: one key and value per new position",
                actual: key.shape)
        }
        guard batchShape == cache.batchShape else {
            let batch = cache.batchShape.map { "\($0), " }.joined()
            throw AttentionError.shapeMismatch(
                argument: "query", expected: "[\(batch)n, \(inputFeatures)] (the cache's batch dimensions)",
                actual: query.shape)
        }
        guard cache.heads == heads, cache.headDimension == headDimension else {
            let batch = cache.batchShape.map { "\($0), " }.joined()
            throw AttentionError.shapeMismatch(
                argument: "cache", expected: "[\(batch)maxLength, \(heads), \(headDimension)] for this module's heads",
                actual: cache.key.shape)
        }
        let (start, maxLength) = (cache.index, cache.maxLength)
        guard cache.lengths.allSatisfy({ $0 == start }) else {
            throw AttentionError.invalidArgument(
                argument: "cache",
                reason: "its sequences hold different numbers of positions \(cache.lengths); decode steps every sequence at once")
        }
        guard n <= maxLength - start else {
            throw AttentionError.invalidArgument(
                argument: "cache",
                reason: "holds \(maxLength) positions and \(start) are written: \(n) more do not fit "
                    + "(Flax would silently overwrite the last slot)")
        }
        let flatMask = try mask.map { mask throws(AttentionError) in
            try Self.flattenedMask(
                mask, batchShape: batchShape, heads: heads, lengthQ: n, lengthK: maxLength, argument: "mask")
        }
        let dropout = try resolveDropout(deterministic: deterministic, dropoutSeed: dropoutSeed)
        let batch = try elementCount(of: batchShape, argument: "query")

        var projected = try projectedHeads(query: query, key: key, value: value, batch: batch).heads
        let counts = Array(repeating: n, count: batch)
        try projected.append(to: &cache, counts: counts)
        // The cache is read in place: the first start + n of its maxLength positions.
        projected.readKeysAndValues(from: cache, length: start + n)
        var kernelMask = KernelMask()
        kernelMask.causal = .bottomRight
        if let flatMask {
            // Broadcast over the whole cache; the kernel reads the first start + n columns.
            let strides = ScoreStrides(broadcasting: flatMask.shape, to: [batch, heads, n, maxLength])!
            kernelMask.allowed = (flatMask.values, strides)
        }
        let attended: Tensor
        do {
            attended = try attend(
                projected, mask: kernelMask,
                customMask: {
                    AttentionMask(booleanMask: try Self.cacheMask(flatMask, start: start, count: n, keys: start + n))
                },
                dropout: dropout, returningWeights: false,
                context: "query \(query.shape), key cache \(cache.key.shape) (\(start + n) of \(maxLength) positions)").output
        } catch {
            cache.removeLast(counts)
            throw error
        }
        return try projectedOutput(attended, batchShape: batchShape, length: n)
    }

    /// The mask a custom attention function gets while decoding, over the `keys` cached
    /// positions it is given: `(Bm, Hm, n, keys)`, slot j visible to new query i when
    /// `j <= start + i` and the user's mask allows it (Flax's
    /// `combine_masks(mask, arange(max_len) <= cur_index)`, for n positions).
    private static func cacheMask(
        _ mask: BooleanMask?, start: Int, count n: Int, keys: Int
    ) throws -> BooleanMask {
        let shape = mask?.shape ?? [1, 1, 1, 1]
        let (outer, rows, columns) = (shape[0] * shape[1], shape[2], shape[3])
        let total = try elementCount(of: [outer, n, keys], argument: "mask")
        try checkAllocatable(total, of: Bool.self, argument: "mask")
        var values: [Bool] = []
        values.reserveCapacity(total)
        for o in 0..<outer {
            for i in 0..<n {
                for j in 0..<keys {
                    let allowed = mask.map { $0.values[(o * rows + (rows == 1 ? 0 : i)) * columns + (columns == 1 ? 0 : j)] }
                    values.append(j <= start + i && allowed ?? true)
                }
            }
        }
        return try BooleanMask(shape: [shape[0], shape[1], n, keys], values: values)
    }
}
