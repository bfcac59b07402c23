// PyTorch's shape checks of MultiheadAttention.forward (_mha_shape_check and the in-projection's
// checks), with its error texts: what the adapter checks before the shared attention core runs.

/// The sizes of one call of ``TorchMultiheadAttention``, checked as PyTorch checks them.
struct TorchShapes {
    /// Whether the inputs are batched (3-D) rather than unbatched (2-D).
    var batched: Bool
    /// N, L and S.
    var batch: Int, length: Int, keyLength: Int
    /// The keys appended by `add_bias_kv` and `add_zero_attn`.
    var appended: Int
    /// S + appended: the columns of the scores.
    var extendedLength: Int
    /// The output's shape: the query's, or `(L, E)` unbatched.
    var outputShape: [Int]

    /// Checks the ranks, the widths, key against value and the batch sizes.
    ///
    /// - Throws: `AttentionError.shapeMismatch` naming `"query"`, `"key"` or `"value"`;
    ///   `.overflow` (`"key"`) when the appended keys overflow.
    init(_ module: TorchMultiheadAttention, query: Tensor, key: Tensor, value: Tensor) throws {
        let batchFirst = module.batchFirst
        let batched: Bool
        switch query.rank {
        case 3: batched = true
        case 2: batched = false
        default:
            throw AttentionError.shapeMismatch(
                argument: "query",
                expected: "unbatched 2-D (L, E) or batched 3-D \(batchFirst ? "(N, L, E)" : "(L, N, E)")",
                actual: query.shape)
        }
        let kind = batched ? "batched (3-D)" : "unbatched (2-D)"
        for (name, tensor) in [("key", key), ("value", value)] where tensor.rank != query.rank {
            throw AttentionError.shapeMismatch(
                argument: name, expected: "\(query.rank)-D, as the \(kind) query \(query.shape)", actual: tensor.shape)
        }
        func sizes(_ tensor: Tensor) -> (batch: Int, length: Int) {
            guard batched else { return (1, tensor.shape[0]) }
            return batchFirst ? (tensor.shape[0], tensor.shape[1]) : (tensor.shape[1], tensor.shape[0])
        }
        let (batch, length) = sizes(query)
        let (keyBatch, keyLength) = sizes(key)
        (self.batched, self.batch, self.length, self.keyLength) = (batched, batch, length, keyLength)
        try Self.checkWidths(module, query: query, key: key, value: value)
        guard keyBatch == batch else {
            throw AttentionError.shapeMismatch(argument: "key", expected: "batch size \(batch), the query's", actual: key.shape)
        }
        appended = (module.biasKey == nil ? 0 : 1) + (module.addZeroAttention ? 1 : 0)
        let (extended, overflow) = keyLength.addingReportingOverflow(appended)
        if overflow { throw AttentionError.overflow(argument: "key") }
        extendedLength = extended
        outputShape = batched ? query.shape : [length, module.embedDim]
    }

    /// The embedding widths and key/value agreement.
    private static func checkWidths(
        _ module: TorchMultiheadAttention, query: Tensor, key: Tensor, value: Tensor
    ) throws(AttentionError) {
        let e = module.embedDim
        guard query.shape[query.rank - 1] == e else {
            throw .shapeMismatch(
                argument: "query", expected: "last dimension \(e): was expecting embedding dimension of \(e)",
                actual: query.shape)
        }
        if module.usesPackedInProjection {
            guard key.shape == value.shape else {
                throw .shapeMismatch(argument: "value", expected: "\(key.shape), the key's shape", actual: value.shape)
            }
        } else if key.shape.dropLast() != value.shape.dropLast() {
            throw .shapeMismatch(
                argument: "value", expected: "the key's sequence and batch dimensions \(Array(key.shape.dropLast()))",
                actual: value.shape)
        }
        guard key.shape[key.rank - 1] == module.keyDim else {
            throw .shapeMismatch(argument: "key", expected: "last dimension \(module.keyDim) (kdim)", actual: key.shape)
        }
        guard value.shape[value.rank - 1] == module.valueDim else {
            throw .shapeMismatch(argument: "value", expected: "last dimension \(module.valueDim) (vdim)", actual: value.shape)
        }
    }
}

extension TorchMultiheadAttention {
    /// The masks' ranks and shapes against L and S, as PyTorch checks them.
    ///
    /// - Throws: `AttentionError.shapeMismatch` naming `"attentionMask"` or `"keyPaddingMask"`.
    func checkMasks(attentionMask: TorchMask?, keyPaddingMask: TorchMask?, _ shapes: TorchShapes) throws {
        let (batched, batch, length, keyLength) = (shapes.batched, shapes.batch, shapes.length, shapes.keyLength)
        if let keyPaddingMask {
            let expected = batched ? [batch, keyLength] : [keyLength]
            guard keyPaddingMask.shape.count == expected.count else {
                throw AttentionError.shapeMismatch(
                    argument: "keyPaddingMask",
                    expected: batched ? "2-D (N, S) for a batched query" : "1-D (S) for an unbatched query",
                    actual: keyPaddingMask.shape)
            }
            guard keyPaddingMask.shape == expected else {
                throw AttentionError.shapeMismatch(
                    argument: "keyPaddingMask", expected: batched ? "\(expected) (N, S)" : "\(expected) (S)",
                    actual: keyPaddingMask.shape)
            }
        }
        guard let shape = attentionMask?.shape else { return }
        guard shape.count == 2 || shape.count == 3 || (batched && shape.count == 4) else {
            throw AttentionError.shapeMismatch(
                argument: "attentionMask",
                expected: batched ? "2-D (L, S), 3-D (N·H, L, S) or 4-D (N or 1, H or 1, L, S)" : "2-D (L, S) or 3-D (H, L, S)",
                actual: shape)
        }
        let batchHeads = batched ? try checkedProduct(batch, heads, argument: "attentionMask") : heads
        let fits = switch shape.count {
        case 2: shape == [length, keyLength]
        case 3: shape == [batchHeads, length, keyLength]
        default: (shape[0] == 1 || shape[0] == batch) && (shape[1] == 1 || shape[1] == heads)
            && shape[2] == length && shape[3] == keyLength
        }
        guard fits else {
            let expected = switch shape.count {
            case 2: "[\(length), \(keyLength)] (L, S)"
            case 3: batched ? "[\(batchHeads), \(length), \(keyLength)] (N·H, L, S)" : "[\(heads), \(length), \(keyLength)] (H, L, S)"
            default: "[\(batch) or 1, \(heads) or 1, \(length), \(keyLength)] (N, H, L, S)"
            }
            throw AttentionError.shapeMismatch(argument: "attentionMask", expected: expected, actual: shape)
        }
    }
}

extension TorchShapes {
    /// The inputs batch-major, `(N, L, ·)`: unbatched ones with a batch of 1, `(L, N, ·)` ones
    /// permuted. A tensor given for several arguments stays one tensor (so self-attention is
    /// still recognised).
    func batchMajor(query: Tensor, key: Tensor, value: Tensor, batchFirst: Bool) throws -> (query: Tensor, key: Tensor, value: Tensor) {
        func convert(_ tensor: Tensor) throws -> Tensor {
            if !batched { return try tensor.reshaped([1] + tensor.shape) }
            return batchFirst ? tensor : try tensor.permuted([1, 0, 2])
        }
        let q = try convert(query)
        let k = isSameTensor(query, key) ? q : try convert(key)
        let v = isSameTensor(key, value) ? k : try convert(value)
        return (q, k, v)
    }

    /// A batch-major `(N, L, ·)` tensor (an input's gradient) in the layout the inputs have.
    func inputLayout(_ tensor: Tensor, batchFirst: Bool) throws -> Tensor {
        if !batched { return try tensor.reshaped(Array(tensor.shape.dropFirst())) }
        return batchFirst ? tensor : try tensor.permuted([1, 0, 2])
    }
}
