// The broadcasting of Flax masks `[batch..., H, L, S]` to the kernels' `(B, H, L, S)`.

extension MultiHeadDotProductAttention {
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
        let batch = try elementCount(of: batchShape, argument: argument)
        if maskBatch.allSatisfy({ $0 == 1 }) {
            return try BooleanMask(unchecked: [1] + trailing, values: mask.values)
        }
        if maskBatch == batchShape {
            return try BooleanMask(unchecked: [batch] + trailing, values: mask.values)
        }
        // Expand the batch dimensions: flattened batch index → the mask's own batch offset.
        let block = try elementCount(of: trailing, argument: argument)
        let maskStrides = contiguousStrides(of: maskBatch)
        let total = try checkedProduct(batch, block, argument: argument)
        try checkAllocatable(total, of: Bool.self, argument: argument)
        var values: [Bool] = []
        values.reserveCapacity(total)
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
