internal import CAttention

/// One validated call of `scaledDotProductAttention`: the sizes, strides and options in the form
/// `attn_params` wants them, checked in Swift first so that every error names its argument.
struct AttentionProblem {
    var batch = 1, headsQ = 1, headsKV = 1, lengthQ = 0, lengthK = 0, dimQK = 0, dimV = 0
    var queryShape: [Int], keyShape: [Int], valueShape: [Int]
    var layout: AttentionLayout

    /// The output's shape: the query's, with the feature size of the values.
    var outputShape: [Int]
    /// The log-sum-exp's shape: the query's without its feature dimension.
    var logSumExpShape: [Int]

    var scale: Float = 0
    var causal = ATTN_CAUSAL_NONE
    var windowLeft: Int64 = -1, windowRight: Int64 = -1
    var keyLengths: [Int64]?
    var maskStrides: (Int64, Int64, Int64, Int64)?
    var biasStrides: (Int64, Int64, Int64, Int64)?
    var dropoutProbability: Float = 0, dropoutSeed: UInt64 = 0, dropoutOffset: UInt64 = 0
    var maskedRows = ATTN_MASKED_ROWS_ZERO
    var threads: Int32 = 0

    /// A description of the call's tensors for error messages.
    var context: String { "query \(queryShape), key \(keyShape), value \(valueShape)" }

    init(
        query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask, scale: Float?,
        dropout: Dropout?, maskedRows: MaskedRowPolicy, threads: Int?, layout: AttentionLayout = .heads
    ) throws(AttentionError) {
        self.layout = layout
        queryShape = query.shape
        keyShape = key.shape
        valueShape = value.shape
        outputShape = []
        logSumExpShape = []
        try validateShapes()
        outputShape = Array(queryShape.dropLast()) + [dimV]
        logSumExpShape = Array(headsFirst(queryShape).dropLast())
        try validateMask(mask)
        try validateOptions(scale: scale, dropout: dropout, maskedRows: maskedRows, threads: threads)
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
            guard !shape.contains(where: { $0 < 1 }) else {
                throw .invalidArgument(
                    argument: name, reason: "every dimension must be at least 1, got shape \(shape)")
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
        causal = mask.causal.kernelValue
        for (side, value) in [("left", mask.window.left), ("right", mask.window.right)] {
            if let value, value < 0 {
                throw .invalidArgument(
                    argument: "mask.window.\(side)",
                    reason: "must be non-negative, or nil for unbounded; got \(value)")
            }
        }
        windowLeft = mask.window.left.map(Int64.init) ?? -1
        windowRight = mask.window.right.map(Int64.init) ?? -1

        if let lengths = mask.keyLengths {
            guard lengths.count == batch else {
                throw .shapeMismatch(
                    argument: "mask.keyLengths",
                    expected: "[\(batch)]: one length per batch of the query \(queryShape)",
                    actual: [lengths.count])
            }
            for (b, length) in lengths.enumerated() where !(0...lengthK).contains(length) {
                throw .invalidArgument(
                    argument: "mask.keyLengths[\(b)]",
                    reason: "must be in 0...\(lengthK) (Lk, the key length of \(keyShape)), got \(length)")
            }
            keyLengths = lengths.map(Int64.init)
        }
        if let booleanMask = mask.booleanMask {
            maskStrides = try broadcastStrides(of: booleanMask.shape, argument: "mask.booleanMask")
        }
        if let bias = mask.bias {
            biasStrides = try broadcastStrides(of: bias.shape, argument: "mask.bias")
        }
    }

    /// The element strides that read a dense, row-major array of `shape` as (B, Hq, Lq, Lk) under
    /// NumPy's broadcasting rules: shapes aligned on the right, a missing or size-1 dimension
    /// repeated (stride 0).
    private func broadcastStrides(of shape: [Int], argument: String) throws(AttentionError)
        -> (Int64, Int64, Int64, Int64)
    {
        let target = [batch, headsQ, lengthQ, lengthK]
        let mismatch = AttentionError.shapeMismatch(
            argument: argument,
            expected: "a shape broadcastable to \(target) (B, Hq, Lq, Lk)", actual: shape)
        guard shape.count <= 4 else { throw mismatch }
        let dense = contiguousStrides(of: shape)
        var strides: [Int64] = [0, 0, 0, 0]
        for (index, size) in shape.enumerated() {
            let axis = 4 - shape.count + index
            if size == target[axis] {
                strides[axis] = size == 1 ? 0 : Int64(dense[index])
            } else if size != 1 {
                throw mismatch
            }
        }
        return (strides[0], strides[1], strides[2], strides[3])
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
            self.scale = scale
        }
        if let dropout {
            guard dropout.probability >= 0, dropout.probability < 1 else {
                throw .invalidArgument(
                    argument: "dropout.probability", reason: "must be in [0, 1), got \(dropout.probability)")
            }
            (dropoutProbability, dropoutSeed, dropoutOffset) = (dropout.probability, dropout.seed, dropout.offset)
        }
        self.maskedRows = maskedRows.kernelValue
        if let threads {
            let maximum = Int(ATTN_MAX_THREADS)
            guard (1...maximum).contains(threads) else {
                throw .invalidArgument(
                    argument: "threads",
                    reason: "must be in 1...\(maximum), or nil for AttentionBackend.threadCount; got \(threads)")
            }
            self.threads = Int32(threads)
        }
    }

    // MARK: Running

    /// Runs the problem on the C kernels. The inputs are read in place (no copies); the output
    /// and the log-sum-exp are new tensors.
    func run(
        query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask,
        algorithm: AttentionAlgorithm, returningLogSumExp: Bool
    ) throws -> (output: Tensor, logSumExp: Tensor?) {
        let output = try Tensor(uninitializedShape: outputShape, argument: "output")
        let logSumExp = returningLogSumExp
            ? try Tensor(uninitializedShape: logSumExpShape, argument: "logSumExp") : nil

        // Strides {batch, head, position} of dense tensors: {H*L*D, L*D, D} in the (B, H, L, D)
        // layout, {L*H*D, D, H*D} in the (B, L, H, D) one. These products are at most the element
        // counts of tensors that exist, so they do not overflow.
        func heads(_ tensor: Tensor, heads: Int, length: Int, dim: Int) -> StridedHeads {
            let strides = layout == .heads
                ? (heads * length * dim, length * dim, dim) : (heads * length * dim, dim, heads * dim)
            return StridedHeads(tensor: tensor, batch: batch, length: length, heads: heads, dim: dim, strides: strides)
        }
        var call = AttentionKernelCall(
            query: heads(query, heads: headsQ, length: lengthQ, dim: dimQK),
            key: heads(key, heads: headsKV, length: lengthK, dim: dimQK),
            value: heads(value, heads: headsKV, length: lengthK, dim: dimV),
            output: heads(output, heads: headsQ, length: lengthQ, dim: dimV))
        call.logSumExp = logSumExp
        call.scale = scale
        call.causal = causal
        (call.windowLeft, call.windowRight) = (windowLeft, windowRight)
        if let biasStrides, let bias = mask.bias {
            (call.bias, call.biasStrides) = (bias, biasStrides)
        }
        if let maskStrides, let booleanMask = mask.booleanMask {
            (call.maskValues, call.maskStrides) = (booleanMask.values, maskStrides)
        }
        call.keyLengths = keyLengths
        call.dropout = Dropout(probability: dropoutProbability, seed: dropoutSeed, offset: dropoutOffset)
        call.maskedRows = maskedRows
        call.threads = threads
        call.algorithm = algorithm
        try call.run(context: context)
        return (output, logSumExp)
    }
}
