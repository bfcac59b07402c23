internal import CAttention

// The two things the Flax-style module needs beyond `scaledDotProductAttention`, both calling
// `attn_forward` directly on tensors read in place:
// - keys and values that are a prefix of a longer buffer (the decode cache: `lengthK` of
//   `keyCapacity` positions per batch), read with the buffer's strides instead of a copy;
// - dropout broadcast across batch and heads (Flax's `broadcast_dropout`): one kernel call per
//   (batch, head), each with the same dropout stream, so weight (b, h, i, j) uses the counter
//   `offset + i·Lk + j` whatever b and h are.
// And the broadcasting of Flax masks `[batch..., H, L, S]` to the kernels' `(B, H, L, S)`.

extension MultiHeadDotProductAttention {
    /// One attention problem on dense `(B, L, H, D)` tensors (`.sequence` layout), run by the
    /// kernels with explicit strides. The inputs are validated by the caller.
    struct KernelCall {
        var batch: Int, headsQ: Int, headsKV: Int, lengthQ: Int, lengthK: Int
        /// Positions stored per batch in the key and value buffers (at least `lengthK`); the
        /// kernel reads positions `0..<lengthK` of each.
        var keyCapacity: Int
        var dimQK: Int, dimV: Int
        var scale: Float = 0
        var causal = ATTN_CAUSAL_NONE
        var windowLeft: Int64 = -1, windowRight: Int64 = -1
        var keyLengths: [Int64]? = nil
        /// Element strides reading the boolean mask as (B, Hq, Lq, Lk).
        var maskStrides: (Int64, Int64, Int64, Int64) = (0, 0, 0, 0)
        var biasStrides: (Int64, Int64, Int64, Int64) = (0, 0, 0, 0)
        var dropout: Dropout? = nil
        var broadcastDropout = false
        var algorithm: AttentionAlgorithm = .fused

        /// The call for a problem `scaledDotProductAttention` validated (`.sequence` layout).
        init(problem: AttentionProblem, broadcastDropout: Bool, algorithm: AttentionAlgorithm) {
            batch = problem.batch
            headsQ = problem.headsQ
            headsKV = problem.headsKV
            lengthQ = problem.lengthQ
            lengthK = problem.lengthK
            keyCapacity = problem.lengthK
            dimQK = problem.dimQK
            dimV = problem.dimV
            scale = problem.scale
            causal = problem.causal
            windowLeft = problem.windowLeft
            windowRight = problem.windowRight
            keyLengths = problem.keyLengths
            maskStrides = problem.maskStrides ?? (0, 0, 0, 0)
            biasStrides = problem.biasStrides ?? (0, 0, 0, 0)
            if problem.dropoutProbability > 0 {
                dropout = Dropout(
                    probability: problem.dropoutProbability, seed: problem.dropoutSeed, offset: problem.dropoutOffset)
            }
            self.broadcastDropout = broadcastDropout
            self.algorithm = algorithm
        }

        init(
            batch: Int, heads: Int, lengthQ: Int, lengthK: Int, keyCapacity: Int, headDimension: Int,
            causal: attn_causal, maskStrides: (Int64, Int64, Int64, Int64), dropout: Dropout?,
            broadcastDropout: Bool, algorithm: AttentionAlgorithm
        ) {
            self.batch = batch
            headsQ = heads
            headsKV = heads
            self.lengthQ = lengthQ
            self.lengthK = lengthK
            self.keyCapacity = keyCapacity
            dimQK = headDimension
            dimV = headDimension
            self.causal = causal
            self.maskStrides = maskStrides
            self.dropout = dropout
            self.broadcastDropout = broadcastDropout
            self.algorithm = algorithm
        }

        /// Runs the problem; the result is a new `outputShape` tensor, `(B, Lq, Hq, Dv)` in
        /// memory. Masked rows give the mean of the values (Flax's finfo.min masking).
        func run(
            query: Tensor, key: Tensor, value: Tensor, mask: BooleanMask?, bias: Tensor?, outputShape: [Int]
        ) throws -> Tensor {
            let output = try Tensor(uninitializedShape: outputShape, argument: "output")
            // (B, L, H, D) buffers holding `length` positions per batch.
            func heads(_ tensor: Tensor, heads: Int, length: Int, capacity: Int, dim: Int) -> StridedHeads {
                StridedHeads(
                    tensor: tensor, batch: batch, length: length, heads: heads, dim: dim,
                    strides: (capacity * heads * dim, dim, heads * dim))
            }
            var call = AttentionKernelCall(
                query: heads(query, heads: headsQ, length: lengthQ, capacity: lengthQ, dim: dimQK),
                key: heads(key, heads: headsKV, length: lengthK, capacity: keyCapacity, dim: dimQK),
                value: heads(value, heads: headsKV, length: lengthK, capacity: keyCapacity, dim: dimV),
                output: heads(output, heads: headsQ, length: lengthQ, capacity: lengthQ, dim: dimV))
            call.scale = scale
            call.causal = causal
            (call.windowLeft, call.windowRight) = (windowLeft, windowRight)
            (call.maskValues, call.maskStrides) = (mask?.values, maskStrides)
            (call.bias, call.biasStrides) = (bias, biasStrides)
            call.keyLengths = keyLengths
            call.dropout = dropout
            call.broadcastDropout = broadcastDropout
            call.maskedRows = ATTN_MASKED_ROWS_MEAN
            call.algorithm = algorithm
            try call.run(
                context: "query \(query.shape), key \(key.shape) (\(lengthK) of \(keyCapacity) positions), value \(value.shape)")
            return output
        }
    }

    // MARK: - Masks

    /// A mask broadcastable to `batchShape + [H, L, S]` (NumPy's rules, aligned on the right)
    /// as a rank-4 mask broadcastable to the kernels' `(B, H, L, S)`, with B the product of the
    /// batch dimensions. The mask is reused as it is when its batch dimensions are all 1 or all
    /// equal to the batch's; otherwise (e.g. `[2, 1, H, L, S]` for a batch `[2, 3]`) its batch
    /// dimensions are expanded.
    static func flattenedMask(
        _ mask: BooleanMask, batchShape: [Int], heads: Int, lengthQ: Int, lengthK: Int, argument: String
    ) throws(AttentionError) -> BooleanMask {
        let target = batchShape + [heads, lengthQ, lengthK]
        let mismatch = AttentionError.shapeMismatch(
            argument: argument,
            expected: "a shape broadcastable to \(target) ([batch..., H, L, S]; true attends)", actual: mask.shape)
        guard mask.rank <= target.count else { throw mismatch }
        let padded = Array(repeating: 1, count: target.count - mask.rank) + mask.shape
        for (size, wanted) in zip(padded, target) where size != wanted && size != 1 {
            throw mismatch
        }
        let batchRank = batchShape.count
        let maskBatch = Array(padded.prefix(batchRank)), trailing = Array(padded.suffix(3))
        let batch = batchShape.reduce(1, *)
        if maskBatch.allSatisfy({ $0 == 1 }) {
            return try BooleanMask(unchecked: [1] + trailing, values: mask.values)
        }
        if maskBatch == batchShape {
            return try BooleanMask(unchecked: [batch] + trailing, values: mask.values)
        }
        // Expand the batch dimensions: flattened batch index → the mask's own batch offset.
        let block = trailing.reduce(1, *)
        let maskStrides = contiguousStrides(of: maskBatch)
        var values: [Bool] = []
        values.reserveCapacity(batch * block)
        var index = [Int](repeating: 0, count: batchRank)
        for _ in 0..<batch {
            var offset = 0
            for axis in 0..<batchRank where maskBatch[axis] != 1 {
                offset += index[axis] * maskStrides[axis]
            }
            values.append(contentsOf: mask.values[(offset * block)..<((offset + 1) * block)])
            var axis = batchRank - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < batchShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return try BooleanMask(unchecked: [batch] + trailing, values: values)
    }

    /// The element strides that read a rank-4 mask (each dimension 1 or full) as (B, H, L, S).
    static func broadcastStrides(of shape: [Int]) -> (Int64, Int64, Int64, Int64) {
        let dense = contiguousStrides(of: shape)
        let s = (0..<4).map { shape[$0] == 1 ? Int64(0) : Int64(dense[$0]) }
        return (s[0], s[1], s[2], s[3])
    }
}

extension BooleanMask {
    /// A mask whose shape and values are already known to agree.
    fileprivate init(unchecked shape: [Int], values: [Bool]) throws(AttentionError) {
        do {
            try self.init(shape: shape, values: values)
        } catch let error as AttentionError {
            throw error
        } catch {
            throw .invalidArgument(argument: "mask", reason: "\(error)")
        }
    }
}
