internal import CAttention

/// The attention weights of Flax's `dot_product_attention_weights`:
/// `softmax(where(mask, q kᵀ / √D + bias, finfo.min))`, then optional dropout, for heads in
/// Flax's layout.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let q = try Tensor(randomNormal: [2, 5, 4, 8], using: &rng)   // [batch, L, H, D]
/// let k = try Tensor(randomNormal: [2, 7, 4, 8], using: &rng)   // [batch, S, H, D]
/// let w = try dotProductAttentionWeights(query: q, key: k)       // [2, 4, 5, 7]
/// ```
///
/// Masked scores are replaced by the most negative finite float, as in Flax, so a row with every
/// score masked gets uniform weights `1/S`, and a masked score wins over a `-infinity` bias. A row
/// whose every unmasked score is `-infinity` (by the bias) and which has no masked score is NaN.
///
/// Dropout uses the counter-based hash of the kernels (see ``Dropout``), with the counter of
/// weight (b, h, i, j) equal to `offset + i·S + j` when `broadcastDropout` (one mask shared by
/// every batch and head) and to `offset + ((b·H + h)·L + i)·S + j` otherwise, where b is the
/// flattened batch index. These are the decisions ``MultiHeadDotProductAttention`` makes through
/// the fused kernel, so `weights · v` with dropout is that module's attention output.
///
/// - Parameters:
///   - query: `[batch..., L, H, D]`, any number of batch dimensions (zero included).
///   - key: `[batch..., S, H, D]`, with the query's batch dimensions, heads and depth.
///   - mask: broadcastable to `[batch..., H, L, S]`; `true` attends.
///   - bias: broadcastable to `[batch..., H, L, S]`, added to the scaled scores before masking.
///   - dropout: dropout on the weights; `nil` (the default) for none.
///   - broadcastDropout: share one dropout mask `(L, S)` across batch and heads.
/// - Returns: `[batch..., H, L, S]`.
/// - Throws: `AttentionError.shapeMismatch` (`"query"`, `"key"`, `"mask"`, `"bias"`) for
///   shapes that do not fit; `.invalidArgument` for an empty dimension or
///   (`"dropout.probability"`) a probability outside `[0, 1)`; the kernels' errors.
public func dotProductAttentionWeights(
    query: Tensor, key: Tensor, mask: BooleanMask? = nil, bias: Tensor? = nil,
    dropout: Dropout? = nil, broadcastDropout: Bool = true
) throws -> Tensor {
    guard query.rank >= 3 else {
        throw AttentionError.shapeMismatch(
            argument: "query", expected: "[batch..., L, H, D] (rank 3 or more)", actual: query.shape)
    }
    let rank = query.rank
    let batchShape = Array(query.shape.prefix(rank - 3))
    let (lengthQ, heads, depth) = (query.shape[rank - 3], query.shape[rank - 2], query.shape[rank - 1])
    guard key.rank == rank, Array(key.shape.prefix(rank - 3)) == batchShape,
          key.shape[rank - 2] == heads, key.shape[rank - 1] == depth
    else {
        let batch = batchShape.map { "\($0), " }.joined()
        throw AttentionError.shapeMismatch(
            argument: "key", expected: "[\(batch)S, \(heads), \(depth)] (the query's batch dimensions, heads and depth)",
            actual: key.shape)
    }
    let lengthK = key.shape[rank - 3]
    for (name, shape) in [("query", query.shape), ("key", key.shape)] where shape.contains(where: { $0 < 1 }) {
        throw AttentionError.invalidArgument(argument: name, reason: "every dimension must be at least 1, got shape \(shape)")
    }
    if let dropout, !(dropout.probability >= 0 && dropout.probability < 1) {
        throw AttentionError.invalidArgument(
            argument: "dropout.probability", reason: "must be in [0, 1), got \(dropout.probability)")
    }
    let trailing = [heads, lengthQ, lengthK]
    let maskLayout = try mask.map { try BroadcastLayout($0.shape, batchShape: batchShape, trailing: trailing, argument: "mask") }
    let biasLayout = try bias.map { try BroadcastLayout($0.shape, batchShape: batchShape, trailing: trailing, argument: "bias") }
    let batch = batchShape.reduce(1, *)
    var weights = try Tensor(zeros: batchShape + trailing)

    // Scores, one (b, h) at a time: q (L, D) and k (S, D) read in place with row stride H·D.
    let rowStride = heads * depth
    let status: attn_status = weights.withUnsafeMutableBufferPointer { out in
        query.withUnsafeBufferPointer { q in
            key.withUnsafeBufferPointer { k in
                for b in 0..<batch {
                    for h in 0..<heads {
                        var params = attn_matmul_params()
                        params.m = Int64(lengthQ)
                        params.n = Int64(lengthK)
                        params.k = Int64(depth)
                        params.a = q.baseAddress! + b * lengthQ * rowStride + h * depth
                        params.lda = Int64(rowStride)
                        params.b = k.baseAddress! + b * lengthK * rowStride + h * depth
                        params.ldb = Int64(rowStride)
                        params.b_transposed = 1
                        params.c = out.baseAddress! + (b * heads + h) * lengthQ * lengthK
                        params.ldc = Int64(lengthK)
                        let status = attn_matmul(&params)
                        if status != ATTN_OK { return status }
                    }
                }
                return ATTN_OK
            }
        }
    }
    let context = "query \(query.shape), key \(key.shape)"
    if let error = AttentionError(status: status, function: "attn_matmul", context: context) { throw error }

    // Scale, bias, mask (finfo.min, as Flax), then the row softmax.
    let scale = Float(1 / Double(depth).squareRoot())
    let biasValues = bias?.scalars
    let maskValues = mask?.values
    let softmaxStatus: attn_status = weights.withUnsafeMutableBufferPointer { w in
        var index = 0
        for b in 0..<batch {
            let maskBase = maskLayout?.batchOffsets[b] ?? 0, biasBase = biasLayout?.batchOffsets[b] ?? 0
            for h in 0..<heads {
                for i in 0..<lengthQ {
                    for j in 0..<lengthK {
                        var score = w[index] * scale
                        if let biasValues, let biasLayout {
                            score += biasValues[biasBase + biasLayout.offset(h, i, j)]
                        }
                        if let maskValues, let maskLayout, !maskValues[maskBase + maskLayout.offset(h, i, j)] {
                            score = -Float.greatestFiniteMagnitude
                        }
                        w[index] = score
                        index += 1
                    }
                }
            }
        }
        return attn_softmax_rows(
            w.baseAddress, Int64(lengthK), Int64(batch * heads * lengthQ), Int64(lengthK), ATTN_MASKED_ROWS_NAN, 0)
    }
    if let error = AttentionError(status: softmaxStatus, function: "attn_softmax_rows", context: context) { throw error }

    if let dropout, dropout.probability > 0 {
        let threshold = attn_dropout_threshold(dropout.probability)
        let keepScale = 1 / (1 - dropout.probability)
        let rows = lengthQ * lengthK
        weights.withUnsafeMutableBufferPointer { w in
            for index in w.indices {
                // index = ((b·H + h)·L + i)·S + j; broadcast keeps only i·S + j.
                let counter = broadcastDropout ? index % rows : index
                let kept = attn_dropout_bits(dropout.seed, dropout.offset &+ UInt64(counter)) >= threshold
                w[index] = kept ? w[index] * keepScale : 0
            }
        }
    }
    return weights
}

/// How a tensor broadcastable to `batchShape + trailing` (NumPy's rules) is indexed: the element
/// offset of each flattened batch index, and the strides of the trailing dimensions (0 where
/// broadcast).
private struct BroadcastLayout {
    var batchOffsets: [Int]
    var trailingStrides: (Int, Int, Int)

    init(_ shape: [Int], batchShape: [Int], trailing: [Int], argument: String) throws(AttentionError) {
        let target = batchShape + trailing
        let mismatch = AttentionError.shapeMismatch(
            argument: argument, expected: "a shape broadcastable to \(target) ([batch..., H, L, S])", actual: shape)
        guard shape.count <= target.count else { throw mismatch }
        let padded = Array(repeating: 1, count: target.count - shape.count) + shape
        for (size, wanted) in zip(padded, target) where size != wanted && size != 1 {
            throw mismatch
        }
        let dense = contiguousStrides(of: padded)
        let strides = zip(padded, dense).map { $0 == 1 ? 0 : $1 }
        let batchRank = batchShape.count
        trailingStrides = (strides[batchRank], strides[batchRank + 1], strides[batchRank + 2])
        var offsets: [Int] = []
        let batch = batchShape.reduce(1, *)
        offsets.reserveCapacity(batch)
        var index = [Int](repeating: 0, count: batchRank)
        for _ in 0..<batch {
            offsets.append(zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 })
            var axis = batchRank - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < batchShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        batchOffsets = offsets
    }

    func offset(_ h: Int, _ i: Int, _ j: Int) -> Int {
        h * trailingStrides.0 + i * trailingStrides.1 + j * trailingStrides.2
    }
}
