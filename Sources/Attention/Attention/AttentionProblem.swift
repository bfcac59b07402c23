/// One validated call of `scaledDotProductAttention`: the caller's tensors, mask and options
/// checked in Swift first, so that every error names its argument, then held as the kernel call
/// that runs them.
struct AttentionProblem {
    var batch = 1, headsQ = 1, headsKV = 1, lengthQ = 0, lengthK = 0, dimQK = 0, dimV = 0
    var queryShape: [Int], keyShape: [Int], valueShape: [Int]
    var layout: AttentionLayout

    /// The output's shape: the query's, with the feature size of the values.
    var outputShape: [Int] = []
    /// The log-sum-exp's shape: the query's without its feature dimension.
    var logSumExpShape: [Int] = []

    /// The kernel call over the caller's tensors, read in place.
    var call: AttentionKernelCall

    /// A description of the call's tensors for error messages.
    var context: String { "query \(queryShape), key \(keyShape), value \(valueShape)" }

    init(
        query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask, scale: Float?,
        dropout: Dropout?, maskedRows: MaskedRowPolicy, threads: Int?, layout: AttentionLayout = .heads,
        outputDType: Tensor.DType? = nil
    ) throws(AttentionError) {
        self.layout = layout
        queryShape = query.shape
        keyShape = key.shape
        valueShape = value.shape
        // Placeholder views, replaced once the shapes are known.
        let empty = StridedHeads(tensor: query, batch: 0, length: 0, heads: 0, dim: 0, strides: (0, 0, 0))
        call = AttentionKernelCall(query: empty, key: empty, value: empty)
        try validateShapes()
        outputShape = Array(queryShape.dropLast()) + [dimV]
        logSumExpShape = Array(headsFirst(queryShape).dropLast())
        func heads(_ tensor: Tensor, heads: Int, length: Int, dim: Int) -> StridedHeads {
            StridedHeads(dense: tensor, layout: layout, batch: batch, length: length, heads: heads, dim: dim)
        }
        call.query = heads(query, heads: headsQ, length: lengthQ, dim: dimQK)
        call.key = heads(key, heads: headsKV, length: lengthK, dim: dimQK)
        call.value = heads(value, heads: headsKV, length: lengthK, dim: dimV)
        try validateMask(mask)
        try validateOptions(scale: scale, dropout: dropout, maskedRows: maskedRows, threads: threads)
        call.outputDType = outputDType ?? query.dtype
    }

    // MARK: Shapes

    /// The logical 4-D shape (B, H, L, D) of a rank-2, 3 or 4 tensor in the (B, H, L, D) layout.
    private static func logical(_ shape: [Int]) -> [Int] {
        Array(repeating: 1, count: 4 - shape.count) + shape
    }

    /// `shape` in (B, H, L, D) order: the sequence-first layout swaps its length and head axes.
    private func headsFirst(_ shape: [Int]) -> [Int] {
        guard layout == .sequence, shape.count >= 3 else { return shape }
        var s = shape
        s.swapAt(s.count - 3, s.count - 2)
        return s
    }

    /// The last `rank` of the four symbols or sizes, as "[2, Hkv, Lk, 16]".
    private static func pattern(_ parts: [String], rank: Int) -> String {
        "[" + parts.suffix(rank).joined(separator: ", ") + "]"
    }

    private static func layout(_ names: [String], rank: Int) -> String {
        "(" + names.suffix(rank).joined(separator: ", ") + ")"
    }

    private mutating func validateShapes() throws(AttentionError) {
        let rank = queryShape.count
        guard (2...4).contains(rank) else {
            throw .shapeMismatch(
                argument: "query", expected: "rank 2 (Lq, Dqk), 3 (Hq, Lq, Dqk) or 4 (B, Hq, Lq, Dqk)",
                actual: queryShape)
        }
        for (name, shape) in [("query", queryShape), ("key", keyShape), ("value", valueShape)] {
            guard shape.count == rank else {
                let names = name == "value" ? ["B", "Hkv", "Lk", "Dv"] : ["B", "Hkv", "Lk", "Dqk"]
                throw .shapeMismatch(
                    argument: name,
                    expected: "rank \(rank) like the query \(queryShape): \(Self.layout(names, rank: rank))",
                    actual: shape)
            }
            // A batch or a sequence may be empty; heads and features are sizes, at least 1.
            let logical = Self.logical(headsFirst(shape))
            guard logical[0] >= 0, logical[1] >= 1, logical[2] >= 0, logical[3] >= 1 else {
                throw .invalidArgument(
                    argument: name,
                    reason: "heads and features must be at least 1 and no dimension negative "
                        + "(a batch or a sequence may be empty), got shape \(shape)")
            }
        }
        let q = Self.logical(headsFirst(queryShape)), k = Self.logical(headsFirst(keyShape))
        let v = Self.logical(headsFirst(valueShape))
        (batch, headsQ, lengthQ, dimQK) = (q[0], q[1], q[2], q[3])
        (headsKV, lengthK, dimV) = (k[1], k[2], v[3])

        let keyPattern = Self.pattern(["\(batch)", "Hkv", "Lk", "\(dimQK)"], rank: rank)
        let keyLayout = Self.layout(["B", "Hkv", "Lk", "Dqk"], rank: rank)
        guard k[0] == batch, k[3] == dimQK else {
            throw .shapeMismatch(
                argument: "key",
                expected: "\(keyPattern) \(keyLayout) with the batch and feature sizes of the query \(queryShape)",
                actual: keyShape)
        }
        guard headsQ % headsKV == 0 else {
            throw .shapeMismatch(
                argument: "key",
                expected: "\(keyPattern) with Hkv dividing the query's \(headsQ) heads (grouped-query attention)",
                actual: keyShape)
        }
        guard v[0] == batch, v[1] == headsKV, v[2] == lengthK else {
            let valuePattern = Self.pattern(["\(batch)", "\(headsKV)", "\(lengthK)", "Dv"], rank: rank)
            throw .shapeMismatch(
                argument: "value",
                expected: "\(valuePattern) \(Self.layout(["B", "Hkv", "Lk", "Dv"], rank: rank)) "
                    + "matching the key \(keyShape)",
                actual: valueShape)
        }
    }

    // MARK: Mask

    private mutating func validateMask(_ mask: AttentionMask) throws(AttentionError) {
        call.mask = try KernelMask(
            mask, scores: [batch, headsQ, lengthQ, lengthK],
            keyLengthsContext: "the key length of \(keyShape)", batchContext: "the query \(queryShape)")
    }

    // MARK: Options

    private mutating func validateOptions(
        scale: Float?, dropout: Dropout?, maskedRows: MaskedRowPolicy, threads: Int?
    ) throws(AttentionError) {
        if let scale {
            // 0 is how attn_params spells "the default", so a zero scale cannot be passed on.
            guard scale.isFinite, scale != 0 else {
                throw .invalidArgument(
                    argument: "scale", reason: "must be finite and nonzero (nil selects 1/√Dqk), got \(scale)")
            }
            call.scale = scale
        }
        if let dropout {
            guard dropout.probability >= 0, dropout.probability < 1 else {
                throw .invalidArgument(
                    argument: "dropout.probability", reason: "must be in [0, 1), got \(dropout.probability)")
            }
            call.dropout = dropout
        }
        call.maskedRows = maskedRows
        if let threads {
            let maximum = AttentionBackend.maximumThreadCount
            guard (1...maximum).contains(threads) else {
                throw .invalidArgument(
                    argument: "threads",
                    reason: "must be in 1...\(maximum), or nil for AttentionBackend.threadCount; got \(threads)")
            }
            call.threads = threads
        }
    }

    // MARK: Running

    /// Runs the problem on the C kernels. The inputs are read in place (no copies); the output
    /// and the log-sum-exp are new tensors.
    func run(algorithm: AttentionAlgorithm, returningLogSumExp: Bool) throws(AttentionError)
        -> (output: Tensor, logSumExp: Tensor?)
    {
        var call = call
        call.algorithm = algorithm
        return try call.run(
            outputShape: outputShape, outputLayout: layout,
            logSumExpShape: returningLogSumExp ? logSumExpShape : nil, context: context)
    }
}

extension KernelMask {
    /// The kernels' form of `mask` for scores `(B, Hq, Lq, Lk)`, checked: windows non-negative,
    /// one key length per batch within `0...Lk`, the boolean mask and the bias broadcastable to
    /// the scores, the bias `float32`.
    ///
    /// - Parameters:
    ///   - keyLengthsContext, batchContext: name Lk and B in the errors.
    /// - Throws: `AttentionError.invalidArgument` or `.shapeMismatch` naming `"mask.window.left"`,
    ///   `"mask.keyLengths"`, `"mask.booleanMask"`, `"mask.bias"`; `.unsupportedDType` (`"mask.bias"`).
    init(
        _ mask: AttentionMask, scores: [Int], keyLengthsContext: @autoclosure () -> String = "Lk",
        batchContext: @autoclosure () -> String = "the query"
    ) throws(AttentionError) {
        for (side, value) in [("left", mask.window.left), ("right", mask.window.right)] {
            if let value, value < 0 {
                throw .invalidArgument(
                    argument: "mask.window.\(side)", reason: "must be non-negative, or nil for unbounded; got \(value)")
            }
        }
        self.init()
        (causal, window) = (mask.causal, mask.window)
        let (batch, lengthK) = (scores[0], scores[3])
        if let lengths = mask.keyLengths {
            guard lengths.count == batch else {
                throw .shapeMismatch(
                    argument: "mask.keyLengths", expected: "[\(batch)]: one length per batch of \(batchContext())",
                    actual: [lengths.count])
            }
            for (b, length) in lengths.enumerated() where !(0...lengthK).contains(length) {
                throw .invalidArgument(
                    argument: "mask.keyLengths[\(b)]",
                    reason: "must be in 0...\(lengthK) (Lk, \(keyLengthsContext())), got \(length)")
            }
            keyLengths = lengths
        }
        func strides(of shape: [Int], argument: String) throws(AttentionError) -> ScoreStrides {
            guard let strides = ScoreStrides(broadcasting: shape, to: scores) else {
                throw .shapeMismatch(
                    argument: argument, expected: "a shape broadcastable to \(scores) (B, Hq, Lq, Lk)", actual: shape)
            }
            return strides
        }
        if let booleanMask = mask.booleanMask {
            allowed = (booleanMask.values, try strides(of: booleanMask.shape, argument: "mask.booleanMask"))
        }
        if let bias = mask.bias {
            try bias.requireFloat32(
                "mask.bias", reason: "the additive bias is float32 whatever the dtypes of query, key and value")
            self.bias = (bias, try strides(of: bias.shape, argument: "mask.bias"))
        }
    }
}
