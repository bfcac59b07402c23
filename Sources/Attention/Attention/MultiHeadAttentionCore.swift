// The one multi-head attention of this package. Every attention module (PyTorch's, Equinox's,
// Flax's, the tutorial's) and the models (BERT, Llama) are thin adapters over it: they check their
// own conventions (shapes, masks, names), then project, attend and project out here, so that a
// backward pass has one forward to differentiate.

/// The query, key and value heads of one attention call, read in place (strided views into the
/// projections, a packed projection or a cache).
package struct ProjectedHeads {
    /// The queries stored as `dtype` (a dense copy, rounded once): bf16 queries over a bf16 cache
    /// put the attention on the bf16 dot-product kernel.
    ///
    /// - Throws: `AttentionError` from the allocation.
    package mutating func convertQuery(to dtype: Tensor.DType) throws {
        let q = query
        query = StridedHeads(
            dense: try q.denseRows().converted(to: dtype), layout: .sequence, batch: q.batch, length: q.length,
            heads: q.heads, dim: q.dim)
    }

    /// Reads the keys and values from `cache` instead: its sequences' first `length` positions.
    package mutating func readKeysAndValues(from cache: KeyValueCache, length: Int) {
        (key, value) = (cache.keyHeads(length: length), cache.valueHeads(length: length))
    }

    /// Appends the new keys and values to `cache` (each sequence's first `counts[b]` rows).
    ///
    /// - Throws: `AttentionError` from the conversion.
    package func append(to cache: inout KeyValueCache, counts: [Int]) throws {
        try cache.append(keys: key, values: value, counts: counts)
    }

    /// `(B, Hq, Lq, Dqk)` by strides.
    var query: StridedHeads
    /// `(B, Hkv, Lk, Dqk)` by strides.
    var key: StridedHeads
    /// `(B, Hkv, Lk, Dv)` by strides.
    var value: StridedHeads
}

/// How a module's inputs become query, key and value heads.
package enum InputProjections {
    /// One layer whose outputs are the query, key and value projections side by side, `[q | k | v]`
    /// (PyTorch's `in_proj_weight`, Llama's stacked `q_proj`/`k_proj`/`v_proj`).
    case packed(Linear)
    /// A layer each.
    case separate(query: Linear, key: Linear, value: Linear)
}

/// The shape of a module's heads and how it attends: the one implementation behind every
/// attention module.
package struct MultiHeadAttentionCore {
    /// Query heads and key/value heads (grouped-query attention when they differ).
    var heads: Int, keyValueHeads: Int
    /// The features of one query/key head and of one value head.
    var queryKeySize: Int, valueSize: Int

    /// A core of `heads` query heads over `keyValueHeads` key/value heads (default: as many).
    package init(heads: Int, keyValueHeads: Int? = nil, queryKeySize: Int, valueSize: Int? = nil) {
        (self.heads, self.keyValueHeads) = (heads, keyValueHeads ?? heads)
        (self.queryKeySize, self.valueSize) = (queryKeySize, valueSize ?? queryKeySize)
    }

    /// The widths of the query, key and value projections.
    var widths: (query: Int, key: Int, value: Int) {
        (heads * queryKeySize, keyValueHeads * queryKeySize, keyValueHeads * valueSize)
    }

    /// Projects batch-major inputs, query `(B, Lq, ·)` and key and value `(B, Lk, ·)`, into heads:
    /// one matrix multiply for self-attention with a packed projection, one for key and value
    /// when they are one tensor, heads read in place from the products' rows. With `rotary` the
    /// query and key heads are rotated in place in those rows (positions from each sequence's
    /// start in `starts`, from 0 without), before any view of them exists, so nothing is copied.
    ///
    /// - Throws: the layers' and the rotation's errors.
    package func project(
        query: Tensor, key: Tensor, value: Tensor, with projections: InputProjections, products: MatrixProducts = .float32,
        rotary: RotaryPositionalEmbedding? = nil, starts: [Int]? = nil
    ) throws -> ProjectedHeads {
        let (q, k, _) = widths
        let (batch, lengthQ, lengthK) = (query.shape[0], query.shape[1], key.shape[1])
        func heads(_ rows: Tensor, length: Int, offset: Int = 0, count: Int, dim: Int) -> StridedHeads {
            StridedHeads(
                rows: rows, batch: batch, length: length, rowWidth: rows.shape[rows.rank - 1], offset: offset,
                heads: count, dim: dim)
        }
        var rows = try projectedRows(query: query, key: key, value: value, with: projections, products: products)
        if let rotary {
            let starts = starts ?? Array(repeating: 0, count: batch)
            rows = try rotated(consume rows, with: rotary, starts: starts)
        }
        switch rows {
        case let .stacked(qkv):
            return ProjectedHeads(
                query: heads(qkv, length: lengthQ, count: self.heads, dim: queryKeySize),
                key: heads(qkv, length: lengthK, offset: q, count: keyValueHeads, dim: queryKeySize),
                value: heads(qkv, length: lengthK, offset: q + k, count: keyValueHeads, dim: valueSize))
        case let .queryAndKeyValue(queries, kv):
            return ProjectedHeads(
                query: heads(queries, length: lengthQ, count: self.heads, dim: queryKeySize),
                key: heads(kv, length: lengthK, count: keyValueHeads, dim: queryKeySize),
                value: heads(kv, length: lengthK, offset: k, count: keyValueHeads, dim: valueSize))
        case let .separate(queries, keys, values):
            return ProjectedHeads(
                query: heads(queries, length: lengthQ, count: self.heads, dim: queryKeySize),
                key: heads(keys, length: lengthK, count: keyValueHeads, dim: queryKeySize),
                value: heads(values, length: lengthK, count: keyValueHeads, dim: valueSize))
        }
    }

    /// The products the heads are read from, `(B, L, width)` each.
    private enum ProjectedRows {
        /// `[q | k | v]` in every row (self-attention, a packed projection).
        case stacked(Tensor)
        /// The queries, and `[k | v]` (key and value one tensor).
        case queryAndKeyValue(Tensor, Tensor)
        /// One product each.
        case separate(Tensor, Tensor, Tensor)
    }

    private func projectedRows(
        query: Tensor, key: Tensor, value: Tensor, with projections: InputProjections, products: MatrixProducts
    ) throws -> ProjectedRows {
        let (q, k, v) = widths
        switch projections {
        case let .packed(linear) where isSameTensor(query, key) && isSameTensor(key, value):
            return .stacked(try linear(query, products: products))
        case let .packed(linear) where isSameTensor(key, value):
            return .queryAndKeyValue(
                try linear(query, outputs: 0..<q, products: products),
                try linear(key, outputs: q..<(q + k + v), products: products))
        case let .packed(linear):
            return .separate(
                try linear(query, outputs: 0..<q, products: products), try linear(key, outputs: q..<(q + k), products: products),
                try linear(value, outputs: (q + k)..<(q + k + v), products: products))
        case let .separate(queryLayer, keyLayer, valueLayer):
            return .separate(
                try flattened(queryLayer(query, products: products), queryLayer),
                try flattened(keyLayer(key, products: products), keyLayer),
                try flattened(valueLayer(value, products: products), valueLayer))
        }
    }

    /// The rows with the query and key heads rotated where they are: in one pass when they are
    /// adjacent in stacked rows. The rows are taken over, so the rotation writes their storage.
    private func rotated(
        _ rows: consuming ProjectedRows, with rotary: RotaryPositionalEmbedding, starts: [Int]
    ) throws -> ProjectedRows {
        switch consume rows {
        case var .stacked(qkv):
            try rotary.rotate(projection: &qkv, offset: 0, heads: heads + keyValueHeads, starts: starts)
            return .stacked(qkv)
        case .queryAndKeyValue(var queries, var kv):
            try rotary.rotate(projection: &queries, offset: 0, heads: heads, starts: starts)
            try rotary.rotate(projection: &kv, offset: 0, heads: keyValueHeads, starts: starts)
            return .queryAndKeyValue(queries, kv)
        case .separate(var queries, var keys, let values):
            try rotary.rotate(projection: &queries, offset: 0, heads: heads, starts: starts)
            try rotary.rotate(projection: &keys, offset: 0, heads: keyValueHeads, starts: starts)
            return .separate(queries, keys, values)
        }
    }

    /// Attention of the heads: `(B, Lq, Hq·Dv)` from the fused kernel (or `algorithm`), the heads
    /// merged as an output projection reads them, and with `returningWeights` the weights
    /// `(B, Hq, Lq, Lk)` from ``attentionWeights`` (the same masks, scale and dropout decisions,
    /// so the output is the same with or without them).
    ///
    /// - Parameters:
    ///   - scale: the scores' scale; `nil` for `1/√Dqk`.
    ///   - maskedRows: what a query row with no visible key gives, in the output and the weights.
    ///   - broadcastDropout: one dropout pattern for every (batch, head) (Flax).
    /// - Throws: `AttentionError` from the kernels.
    func attend(
        _ heads: ProjectedHeads, mask: KernelMask = KernelMask(), scale: Float? = nil, dropout: Dropout? = nil,
        broadcastDropout: Bool = false, maskedRows: MaskedRowPolicy, returningWeights: Bool = false,
        algorithm: AttentionAlgorithm = .fused, context: @autoclosure () -> String
    ) throws -> (output: Tensor, weights: Tensor?) {
        let result = try run(
            heads, mask: mask, scale: scale, dropout: dropout, broadcastDropout: broadcastDropout, maskedRows: maskedRows,
            returningWeights: returningWeights, algorithm: algorithm, savingLogSumExp: false, context: context())
        return (result.output, result.weights)
    }

    /// The kernel call of ``attend(_:mask:scale:dropout:broadcastDropout:maskedRows:returningWeights:algorithm:context:)``,
    /// its output, the weights when asked for and, with `savingLogSumExp`, each row's
    /// log-sum-exp `(B, Hq, Lq)`: what a backward pass needs.
    func run(
        _ heads: ProjectedHeads, mask: KernelMask, scale: Float?, dropout: Dropout?, broadcastDropout: Bool,
        maskedRows: MaskedRowPolicy, returningWeights: Bool, algorithm: AttentionAlgorithm, savingLogSumExp: Bool,
        context: @autoclosure () -> String
    ) throws -> (call: AttentionKernelCall, output: Tensor, logSumExp: Tensor?, weights: Tensor?) {
        let scale = scale ?? 1 / Float(heads.query.dim).squareRoot()
        var call = AttentionKernelCall(query: heads.query, key: heads.key, value: heads.value)
        (call.mask, call.scale, call.dropout, call.broadcastDropout) = (mask, scale, dropout, broadcastDropout)
        (call.maskedRows, call.algorithm) = (maskedRows, algorithm)
        let (batch, length) = (heads.query.batch, heads.query.length)
        let (output, logSumExp) = try call.run(
            outputShape: [batch, length, heads.query.heads * heads.value.dim], outputLayout: .sequence,
            logSumExpShape: savingLogSumExp ? [batch, heads.query.heads, length] : nil, context: context())
        guard returningWeights else { return (call, output, logSumExp, nil) }
        let weights = try attentionWeights(
            query: heads.query, key: heads.key, mask: mask, scale: scale, maskedRows: maskedRows, dropout: dropout,
            broadcastDropout: broadcastDropout)
        return (call, output, logSumExp, weights)
    }

    /// Attention of the heads under a public ``AttentionMask`` (a model's own masks, checked
    /// against the scores), `(B, Lq, Hq·Dv)` in `outputDType`; a fully masked row gives zeros.
    ///
    /// - Throws: `AttentionError` for a mask that does not fit the scores, or from the kernels.
    package func attend(
        _ heads: ProjectedHeads, mask: AttentionMask, outputDType: Tensor.DType = .float32,
        context: @autoclosure () -> String
    ) throws(AttentionError) -> Tensor {
        var call = AttentionKernelCall(query: heads.query, key: heads.key, value: heads.value)
        let scores = [heads.query.batch, heads.query.heads, heads.query.length, heads.key.length]
        (call.mask, call.outputDType) = (try KernelMask(mask, scores: scores), outputDType)
        let (batch, length) = (heads.query.batch, heads.query.length)
        return try call.run(
            outputShape: [batch, length, heads.query.heads * heads.value.dim], outputLayout: .sequence,
            context: context()).output
    }

    /// Attention within sequences packed end to end: `heads` hold one batch of `T` rows, the
    /// sequences' tokens one after another, and each sequence is one kernel call on views of its
    /// rows, written into its rows of the one result `(T, Hq·Dv)`, in `outputDType`. No token
    /// sees another sequence's; no padding exists. The lengths are non-negative and add up to `T`
    /// (the caller checks).
    ///
    /// - Parameters:
    ///   - causal: causal masking within each sequence.
    ///   - scale: the scores' scale; `nil` for `1/√Dqk`.
    ///   - threads: the threads each call may use; `nil` for the backend's default.
    /// - Throws: `AttentionError` from the allocation or the kernels.
    package func attend(
        _ heads: ProjectedHeads, sequenceLengths: [Int], causal: AttentionMask.Causal = .none, scale: Float? = nil,
        threads: Int? = nil, outputDType: Tensor.DType = .float32, context: @autoclosure () -> String
    ) throws(AttentionError) -> Tensor {
        var call = AttentionKernelCall(query: heads.query, key: heads.key, value: heads.value)
        (call.mask.causal, call.scale, call.threads, call.outputDType) = (causal, scale, threads, outputDType)
        let total = heads.query.length
        let output = try Tensor(
            uninitializedShape: [total, heads.query.heads * heads.value.dim], dtype: call.outputDType, argument: "output")
        if output.count == 0 { return output }
        let written = StridedHeads(
            dense: output, layout: .sequence, batch: 1, length: total, heads: heads.query.heads, dim: heads.value.dim)
        var offset = 0
        for length in sequenceLengths where length > 0 {
            (call.query, call.key, call.value) = (
                heads.query.rows(offset, length), heads.key.rows(offset, length), heads.value.rows(offset, length))
            try call.write(
                into: written.rows(offset, length), context: "sequence of \(length) tokens at row \(offset) of \(context())")
            offset += length
        }
        return output
    }

    /// `layer`'s output `(B, L, outputShape...)` as rows `(B, L, outputSize)`.
    private func flattened(_ tensor: Tensor, _ layer: Linear) throws -> Tensor {
        try tensor.reshaped(Array(tensor.shape.prefix(2)) + [layer.outputSize])
    }
}

extension StridedHeads {
    /// The heads as a dense `(B, L, H·D)` tensor of their dtype: the tensor itself when it is laid
    /// out so already, else a copy (for hooks that take dense heads).
    ///
    /// - Throws: `AttentionError` when the copy cannot be allocated.
    func denseRows() throws -> Tensor {
        let shape = [batch, length, width]
        if offset == 0, headStride == dim, positionStride == width, batchStride == length * width || batch == 1,
           tensor.count == batch * length * width
        {
            return try tensor.reshaped(shape)
        }
        let result = try Tensor(uninitializedShape: shape, dtype: dtype, argument: "heads")
        let size = dtype.byteSize
        if result.count == 0 { return result }
        withExtendedLifetime(tensor) {
            let source = pointer!, target = result.storage.bytes.baseAddress!
            for b in 0..<batch {
                for l in 0..<length {
                    for h in 0..<heads {
                        let from = source + (b * batchStride + l * positionStride + h * headStride) * size
                        (target + ((b * length + l) * heads + h) * dim * size).copyMemory(from: from, byteCount: dim * size)
                    }
                }
            }
        }
        return result
    }
}
