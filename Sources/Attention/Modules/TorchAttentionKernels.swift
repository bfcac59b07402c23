internal import CAttention

// The kernel calls behind TorchMultiheadAttention (and so TransformerEncoderLayer): projections
// with one attn_matmul each, attention that reads the projections in place, the need_weights path
// built from attn_matmul and attn_softmax_rows, and the normalisation of PyTorch's masks into the
// broadcastable forms the kernels take. Internal: nothing here is public API.

/// Internal helpers of ``TorchMultiheadAttention``, in a namespace so their names cannot clash
/// with other modules' helpers.
enum TorchAttentionKernels {
    // MARK: Projections read in place

    /// A `(B, L, width)` projection read in place from a buffer whose rows may be wider: position
    /// `l` of batch `b` starts at element `offset + (b·L + l)·rowStride`. The query, key and value
    /// of packed self-attention are three such views of one `(B, L, 3E)` matmul result, with
    /// offsets 0, E and 2E and row stride 3E, so no split or transpose copies them.
    struct ProjectionView {
        /// The buffer (kept alive by the view).
        var tensor: Tensor
        var batch: Int
        var length: Int
        /// Elements from the buffer's start to feature 0 of position 0 of batch 0.
        var offset: Int
        /// Elements between consecutive positions.
        var rowStride: Int
        /// Features per position (heads × head size).
        var width: Int

        /// A dense `(B, L, width)` tensor viewed as itself.
        init(dense tensor: Tensor, batch: Int, length: Int) {
            self.init(tensor: tensor, batch: batch, length: length, offset: 0,
                      rowStride: tensor.shape.last ?? 0, width: tensor.shape.last ?? 0)
        }

        init(tensor: Tensor, batch: Int, length: Int, offset: Int, rowStride: Int, width: Int) {
            self.tensor = tensor
            self.batch = batch
            self.length = length
            self.offset = offset
            self.rowStride = rowStride
            self.width = width
        }

        var batchStride: Int { length * rowStride }

        /// The view as `heads` consecutive slices of each position's features, for the kernels.
        func heads(_ heads: Int) -> StridedHeads {
            StridedHeads(
                tensor: tensor, offset: offset, batch: batch, length: length, heads: heads, dim: width / heads,
                strides: (batchStride, width / heads, rowStride))
        }

        /// Feature 0 of position 0 of batch 0. Only for non-empty views.
        var base: UnsafePointer<Float> { UnsafePointer(tensor.storage.buffer.baseAddress! + offset) }
    }

    // MARK: Seeds

    /// An independent seed for dropout site `stream` from one user seed: SplitMix64's finaliser of
    /// `seed + (stream + 1)·γ`. Keeps the dropout of different sites (attention weights, the
    /// feed-forward block, each layer) decorrelated while staying a pure function of the seed.
    static func derivedSeed(_ seed: UInt64, stream: UInt64) -> UInt64 {
        var z = seed &+ (stream &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    // MARK: Dense kernels

    /// `c = a·b (+ bias)` or `c += a·b (+ bias)` through `attn_matmul`; `b` holds `bᵀ` when
    /// `bTransposed`. Sizes are in elements.
    static func matmul(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        bias: UnsafePointer<Float>? = nil, accumulate: Bool = false,
        context: @autoclosure () -> String
    ) throws {
        var params = attn_matmul_params()
        params.m = Int64(m)
        params.n = Int64(n)
        params.k = Int64(k)
        params.a = a
        params.lda = Int64(lda)
        params.b = b
        params.ldb = Int64(ldb)
        params.b_transposed = bTransposed ? 1 : 0
        params.c = c
        params.ldc = Int64(ldc)
        params.bias = bias
        params.accumulate = accumulate ? 1 : 0
        params.num_threads = 0
        let status = attn_matmul(&params)
        if let error = AttentionError(status: status, function: "attn_matmul", context: context()) {
            throw error
        }
    }

    /// `input · weight[rows]ᵀ + bias[biasOffset ..< biasOffset + rows.count]` over the last
    /// dimension of `input`, one matmul: the rows of a packed `(3E, E)` weight are read in place
    /// (rows `E..<3E` give key and value together). The result has `input`'s leading dimensions
    /// and `rows.count` features.
    static func project(
        _ input: Tensor, weight: Tensor, rows: Range<Int>, bias: Tensor?, biasOffset: Int
    ) throws -> Tensor {
        let inputSize = weight.shape[1]
        let outputShape = Array(input.shape.dropLast()) + [rows.count]
        let output = try Tensor(uninitializedShape: outputShape, argument: "input")
        let count = input.count / inputSize
        if count == 0 || rows.isEmpty { return output }
        try withExtendedLifetime((input, weight, bias)) {
            try matmul(
                m: count, n: rows.count, k: inputSize,
                a: UnsafePointer(input.storage.buffer.baseAddress!), lda: inputSize,
                b: UnsafePointer(weight.storage.buffer.baseAddress! + rows.lowerBound * inputSize), ldb: inputSize,
                bTransposed: true,
                c: output.storage.buffer.baseAddress!, ldc: rows.count,
                bias: bias.map { UnsafePointer($0.storage.buffer.baseAddress! + biasOffset) },
                context: "input \(input.shape), weight \(weight.shape) rows \(rows)")
        }
        return output
    }

    /// A dense `(B, L + appended, width)` copy of `view` with `bias` (`(…, width)`, one row)
    /// appended to every batch, then a row of zeros when `zero`: PyTorch's `add_bias_kv` then
    /// `add_zero_attn`, in that order.
    static func appending(_ view: ProjectionView, bias: Tensor?, zero: Bool) throws -> ProjectionView {
        let extra = (bias == nil ? 0 : 1) + (zero ? 1 : 0)
        let length = view.length + extra, width = view.width
        let result = try Tensor(zeros: [view.batch, length, width])
        let out = result.storage.buffer.baseAddress!
        withExtendedLifetime((view.tensor, bias)) {
            for b in 0..<view.batch {
                let target = out + b * length * width
                for l in 0..<view.length {
                    (target + l * width).update(from: view.base + b * view.batchStride + l * view.rowStride, count: width)
                }
                if let bias {
                    (target + view.length * width).update(from: bias.storage.buffer.baseAddress!, count: width)
                }
                // The zero row is already zero.
            }
        }
        return ProjectionView(dense: result, batch: view.batch, length: length)
    }

    /// A dense `(B, L, width)` copy of `view` multiplied by `factor` (PyTorch's
    /// `q_scaled = q * sqrt(1 / head_dim)` on the need_weights path).
    static func scaledCopy(_ view: ProjectionView, by factor: Float) throws -> Tensor {
        let result = try Tensor(uninitializedShape: [view.batch, view.length, view.width], argument: "query")
        let out = result.storage.buffer.baseAddress!
        withExtendedLifetime(view.tensor) {
            for b in 0..<view.batch {
                for l in 0..<view.length {
                    let source = view.base + b * view.batchStride + l * view.rowStride
                    let target = out + (b * view.length + l) * view.width
                    for d in 0..<view.width { target[d] = source[d] * factor }
                }
            }
        }
        return result
    }

    // MARK: Masks

    /// A PyTorch mask normalised to the logical shape `(batch, heads, rows, columns)` (`batch` is
    /// 1 or N, `heads` 1 or H, `rows` 1 or L; `columns` includes the appended key columns, which
    /// attend), broadcast to `(N, H, L, S')` through strides, with `true` meaning "attend".
    struct CanonicalMask {
        enum Values {
            /// `true` attends.
            case allowed([Bool])
            /// Added to the scores.
            case additive(Tensor)
        }

        var values: Values
        var batch: Int, heads: Int, rows: Int, columns: Int

        /// Element strides of (b, h, i, j), 0 where broadcast.
        var strides: (Int64, Int64, Int64, Int64) {
            Self.strides(batch: batch, heads: heads, rows: rows, columns: columns)
        }

        /// The strides that broadcast a dense `(batch, heads, rows, columns)` array to
        /// `(N, H, L, S')`.
        static func strides(batch: Int, heads: Int, rows: Int, columns: Int) -> (Int64, Int64, Int64, Int64) {
            (batch == 1 ? 0 : Int64(heads * rows * columns), heads == 1 ? 0 : Int64(rows * columns),
             rows == 1 ? 0 : Int64(columns), 1)
        }

        /// Normalises `mask`, whose elements are `(batch, heads, rows, columns - padding)` in
        /// row-major order, padding every row with `padding` attending columns. A float mask of
        /// only `0` and `-infinity` becomes the equivalent boolean mask.
        init(_ mask: TorchMask, batch: Int, heads: Int, rows: Int, columns: Int, padding: Int) throws {
            (self.batch, self.heads, self.rows, self.columns) = (batch, heads, rows, columns)
            let stored = columns - padding
            func padded<T>(_ source: [T], with fill: T) -> [T] {
                if padding == 0 { return source }
                var result = [T]()
                result.reserveCapacity(source.count / max(stored, 1) * columns)
                for row in 0..<(batch * heads * rows) {
                    result += source[(row * stored)..<((row + 1) * stored)]
                    result += repeatElement(fill, count: padding)
                }
                return result
            }
            switch mask {
            case let .disallowed(boolean):
                values = .allowed(padded(boolean.values.map { !$0 }, with: true))
            case let .allowed(boolean):
                values = .allowed(padded(boolean.values, with: true))
            case let .additive(tensor):
                let scalars = tensor.scalars
                if scalars.allSatisfy({ $0 == 0 || $0 == -.infinity }) {
                    values = .allowed(padded(scalars.map { $0 == 0 }, with: true))
                } else {
                    values = .additive(try Tensor(
                        shape: [batch, heads, rows, columns], scalars: padded(scalars, with: 0)))
                }
            }
        }

        /// The mask as PyTorch's float form (`-infinity` where masked), as `_canonical_mask` makes
        /// it: `(batch, heads, rows, columns)`.
        func additiveTensor() throws -> Tensor {
            switch values {
            case let .additive(tensor): return tensor
            case let .allowed(flags):
                return try Tensor(shape: [batch, heads, rows, columns], scalars: flags.map { $0 ? 0 : -.infinity })
            }
        }

        /// For a key padding mask `(N, 1, 1, S')`: per-batch key lengths when every row attends to
        /// a prefix of the keys and to nothing after it; `nil` otherwise.
        var keyLengths: [Int]? {
            guard case let .allowed(flags) = values, heads == 1, rows == 1 else { return nil }
            var lengths: [Int] = []
            for b in 0..<batch {
                let row = flags[(b * columns)..<((b + 1) * columns)]
                let length = row.firstIndex(of: false).map { $0 - b * columns } ?? columns
                guard !row.dropFirst(length).contains(true) else { return nil }
                lengths.append(length)
            }
            return lengths
        }
    }

    /// What the fused kernel is told to mask: at most one boolean mask and one bias, plus key
    /// lengths and causality, each broadcast through strides.
    struct KernelMask {
        var causal = false
        var keyLengths: [Int64]?
        var allowed: (values: [Bool], strides: (Int64, Int64, Int64, Int64))?
        var bias: (tensor: Tensor, strides: (Int64, Int64, Int64, Int64))?

        /// Combines an attention mask and a key padding mask (either may be absent) into what the
        /// kernel takes, without expanding either to `(N·H, L, S)`: booleans stay booleans (or
        /// become key lengths), floats stay as they are; only two genuinely additive masks are
        /// summed, into the attention mask's own shape broadcast over the batch.
        init(causal: Bool, attention: CanonicalMask?, keyPadding: CanonicalMask?) throws {
            self.causal = causal
            var keyPadding = keyPadding
            if let lengths = keyPadding?.keyLengths {
                keyLengths = lengths.map(Int64.init)
                keyPadding = nil
            }
            switch (attention?.values, keyPadding?.values) {
            case (nil, nil):
                break
            case let (.allowed(flags)?, nil):
                allowed = (flags, attention!.strides)
            case let (.additive(tensor)?, nil):
                bias = (tensor, attention!.strides)
            case let (nil, .allowed(flags)?):
                allowed = (flags, keyPadding!.strides)
            case let (nil, .additive(tensor)?):
                bias = (tensor, keyPadding!.strides)
            case let (.allowed(flags)?, .allowed?):
                // Two boolean masks: the key padding one becomes an (N, 1, 1, S') bias of 0/-inf.
                allowed = (flags, attention!.strides)
                bias = (try keyPadding!.additiveTensor(), keyPadding!.strides)
            case let (.allowed(flags)?, .additive(tensor)?):
                allowed = (flags, attention!.strides)
                bias = (tensor, keyPadding!.strides)
            case let (.additive(tensor)?, .allowed(flags)?):
                bias = (tensor, attention!.strides)
                allowed = (flags, keyPadding!.strides)
            case let (.additive(attentionBias)?, .additive(paddingBias)?):
                let summed = try Self.sum(attention!, attentionBias, paddingBias, batch: keyPadding!.batch)
                bias = (summed.tensor, summed.strides)
            }
        }

        /// `attention + keyPadding` as one `(N, heads, rows, S')` bias (PyTorch's merged mask,
        /// without its head expansion when the attention mask has none).
        private static func sum(
            _ attention: CanonicalMask, _ attentionBias: Tensor, _ paddingBias: Tensor, batch: Int
        ) throws -> (tensor: Tensor, strides: (Int64, Int64, Int64, Int64)) {
            let (heads, rows, columns) = (attention.heads, attention.rows, attention.columns)
            let a = attentionBias.scalars, p = paddingBias.scalars
            let attentionBatchStride = attention.batch == 1 ? 0 : heads * rows * columns
            var scalars = [Float](repeating: 0, count: batch * heads * rows * columns)
            for b in 0..<batch {
                for r in 0..<(heads * rows) {
                    let target = (b * heads * rows + r) * columns
                    let source = b * attentionBatchStride + r * columns
                    for j in 0..<columns { scalars[target + j] = a[source + j] + p[b * columns + j] }
                }
            }
            return (try Tensor(shape: [batch, heads, rows, columns], scalars: scalars),
                    CanonicalMask.strides(batch: batch, heads: heads, rows: rows, columns: columns))
        }
    }

    // MARK: Attention

    /// Attention over projections read in place by the fused kernel (`attn_forward`): heads are
    /// the `heads` consecutive slices of each view's features. Returns `(B, Lq, heads·Dv)`.
    static func fusedAttention(
        query: ProjectionView, key: ProjectionView, value: ProjectionView, heads: Int,
        mask: KernelMask, dropout: Dropout?, maskedRows: MaskedRowPolicy
    ) throws -> Tensor {
        let (batch, lengthQ, lengthK) = (query.batch, query.length, key.length)
        let dimV = value.width / heads
        let output = try Tensor(uninitializedShape: [batch, lengthQ, value.width], argument: "query")

        var call = AttentionKernelCall(
            query: query.heads(heads), key: key.heads(heads), value: value.heads(heads),
            output: StridedHeads(sequenceMajor: output, batch: batch, length: lengthQ, heads: heads, dim: dimV))
        call.causal = mask.causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE
        call.dropout = dropout
        call.maskedRows = maskedRows.kernelValue
        if let bias = mask.bias {
            (call.bias, call.biasStrides) = bias
        }
        if let allowed = mask.allowed {
            (call.maskValues, call.maskStrides) = allowed
        }
        call.keyLengths = mask.keyLengths
        try call.run(
            context: "query (\(batch), \(lengthQ), \(query.width)), key (\(batch), \(lengthK), \(key.width)), "
                + "\(heads) heads")
        return output
    }

    /// PyTorch's need_weights path: per batch and head, `w = attn_mask + (q·√(1/D)) kᵀ` (one
    /// matmul accumulating onto the mask, the key padding row added as the matmul's bias), a plain
    /// row softmax (`attn_softmax_rows`, so a fully masked row is NaN), dropout on the weights,
    /// then `w v` (one matmul writing the head's columns of the output).
    ///
    /// - Parameters:
    ///   - attentionMask: PyTorch's float attention mask, `(1 or N, 1 or H, L, S')`.
    ///   - keyPadding: the float key padding mask, `(N, 1, 1, S')`.
    /// - Returns: the attention output `(N, L, H·Dv)` and the weights `(N, H, L, S')`.
    static func attentionWithWeights(
        query: ProjectionView, key: ProjectionView, value: ProjectionView, heads: Int,
        attentionMask: CanonicalMask?, keyPadding: CanonicalMask?, dropout: Dropout?
    ) throws -> (output: Tensor, weights: Tensor) {
        let (batch, lengthQ, lengthK) = (query.batch, query.length, key.length)
        let dimQK = query.width / heads, dimV = value.width / heads
        let context = "query (\(batch), \(lengthQ), \(query.width)), key (\(batch), \(lengthK), \(key.width)), \(heads) heads"
        let scaled = try scaledCopy(query, by: Float((1 / Double(dimQK)).squareRoot()))
        let attentionBias = try attentionMask?.additiveTensor()
        let paddingBias = try keyPadding?.additiveTensor()
        var weights = try Tensor(uninitializedShape: [batch, heads, lengthQ, lengthK], argument: "query")
        let block = lengthQ * lengthK
        try withExtendedLifetime((scaled, key.tensor, attentionBias, paddingBias, weights)) {
            let w = weights.storage.buffer.baseAddress!
            let q = UnsafePointer(scaled.storage.buffer.baseAddress!)
            for b in 0..<batch {
                for h in 0..<heads {
                    let c = w + (b * heads + h) * block
                    if let attentionBias, let attentionMask {
                        let strides = attentionMask.strides
                        let source = attentionBias.storage.buffer.baseAddress!
                            + b * Int(strides.0) + h * Int(strides.1)
                        if attentionMask.rows == 1 {
                            for i in 0..<lengthQ { (c + i * lengthK).update(from: source, count: lengthK) }
                        } else {
                            c.update(from: source, count: block)
                        }
                    }
                    try matmul(
                        m: lengthQ, n: lengthK, k: dimQK,
                        a: q + b * lengthQ * query.width + h * dimQK, lda: query.width,
                        b: key.base + b * key.batchStride + h * dimQK, ldb: key.rowStride, bTransposed: true,
                        c: c, ldc: lengthK,
                        bias: paddingBias.map { UnsafePointer($0.storage.buffer.baseAddress! + b * lengthK) },
                        accumulate: attentionBias != nil, context: context)
                }
            }
            let status = attn_softmax_rows(
                w, Int64(lengthK), Int64(batch * heads * lengthQ), Int64(lengthK), ATTN_MASKED_ROWS_NAN, 0)
            if let error = AttentionError(status: status, function: "attn_softmax_rows", context: context) {
                throw error
            }
        }
        if let dropout, dropout.probability > 0 {
            // The counter of weight (b, h, i, j) is ((b·H + h)·L + i)·S' + j, the fused kernel's:
            // the same seed drops the same weights on both paths.
            weights = try dropout(weights)
        }
        let output = try Tensor(uninitializedShape: [batch, lengthQ, value.width], argument: "query")
        try withExtendedLifetime((value.tensor, weights, output)) {
            let w = UnsafePointer(weights.storage.buffer.baseAddress!)
            let out = output.storage.buffer.baseAddress!
            for b in 0..<batch {
                for h in 0..<heads {
                    try matmul(
                        m: lengthQ, n: dimV, k: lengthK,
                        a: w + (b * heads + h) * block, lda: lengthK,
                        b: value.base + b * value.batchStride + h * dimV, ldb: value.rowStride, bTransposed: false,
                        c: out + b * lengthQ * value.width + h * dimV, ldc: value.width, context: context)
                }
            }
        }
        return (output, weights)
    }

    /// The mean over heads of weights `(N, H, L, S)` → `(N, L, S)`, as one `(1, H)·(H, L·S)`
    /// matmul per batch with entries `1/H`.
    static func meanOverHeads(_ weights: Tensor) throws -> Tensor {
        let (batch, heads, rows, columns) = (weights.shape[0], weights.shape[1], weights.shape[2], weights.shape[3])
        let output = try Tensor(uninitializedShape: [batch, rows, columns], argument: "weights")
        let average = [Float](repeating: 1 / Float(heads), count: heads)
        let plane = rows * columns
        try withExtendedLifetime((weights, output)) {
            try average.withUnsafeBufferPointer { a in
                for b in 0..<batch {
                    try matmul(
                        m: 1, n: plane, k: heads, a: a.baseAddress!, lda: heads,
                        b: UnsafePointer(weights.storage.buffer.baseAddress! + b * heads * plane), ldb: plane,
                        bTransposed: false, c: output.storage.buffer.baseAddress! + b * plane, ldc: plane,
                        context: "mean of weights \(weights.shape) over heads")
                }
            }
        }
        return output
    }
}
