// What TorchMultiheadAttention adds to the shared attention core: add_bias_kv / add_zero_attn, the
// normalisation of PyTorch's masks into the broadcastable forms the kernels take, and the mean of
// the weights over heads.
// Internal: nothing here is public API.

/// Internal helpers of ``TorchMultiheadAttention``, in a namespace so their names cannot clash
/// with other modules' helpers.
enum TorchAttentionKernels {
    // MARK: Projections

    /// A dense `(B, L + appended, width)` copy of `view` with `bias` (`(…, width)`, one row)
    /// appended to every batch, then a row of zeros when `zero`: PyTorch's `add_bias_kv` then
    /// `add_zero_attn`, in that order.
    static func appending(_ view: StridedHeads, bias: Tensor?, zero: Bool) throws -> StridedHeads {
        let extra = (bias == nil ? 0 : 1) + (zero ? 1 : 0)
        let length = view.length + extra, width = view.width
        let result = try Tensor(zeros: [view.batch, length, width])
        let out = result.storage.buffer.baseAddress!
        withExtendedLifetime((view.tensor, bias)) {
            let base = view.floatPointer!
            for b in 0..<view.batch {
                let target = out + b * length * width
                for l in 0..<view.length {
                    (target + l * width).update(
                        from: base + b * view.batchStride + l * view.positionStride, count: width)
                }
                if let bias {
                    (target + view.length * width).update(from: bias.storage.buffer.baseAddress!, count: width)
                }
                // The zero row is already zero.
            }
        }
        return StridedHeads(
            rows: result, batch: view.batch, length: length, rowWidth: width, heads: view.heads, dim: view.dim)
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
        var strides: ScoreStrides { Self.strides(batch: batch, heads: heads, rows: rows, columns: columns) }

        /// The strides that broadcast a dense `(batch, heads, rows, columns)` array to
        /// `(N, H, L, S')` (each of the first three 1 or full).
        static func strides(batch: Int, heads: Int, rows: Int, columns: Int) -> ScoreStrides {
            // A shape broadcasts to itself; its size-1 dimensions get stride 0.
            ScoreStrides(broadcasting: [batch, heads, rows, columns], to: [batch, heads, rows, columns])!
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

    /// What the fused kernel is told to mask, from an attention mask and a key padding mask
    /// (either may be absent), without expanding either to `(N·H, L, S)`: booleans stay booleans
    /// (or become key lengths), floats stay as they are; only two genuinely additive masks are
    /// summed, into the attention mask's own shape broadcast over the batch.
    static func kernelMask(causal: Bool, attention: CanonicalMask?, keyPadding: CanonicalMask?) throws -> KernelMask {
        var mask = KernelMask()
        mask.causal = causal ? .topLeft : .none
        var keyPadding = keyPadding
        if let lengths = keyPadding?.keyLengths {
            mask.keyLengths = lengths
            keyPadding = nil
        }
        switch (attention?.values, keyPadding?.values) {
        case (nil, nil):
            break
        case let (.allowed(flags)?, nil):
            mask.allowed = (flags, attention!.strides)
        case let (.additive(tensor)?, nil):
            mask.bias = (tensor, attention!.strides)
        case let (nil, .allowed(flags)?):
            mask.allowed = (flags, keyPadding!.strides)
        case let (nil, .additive(tensor)?):
            mask.bias = (tensor, keyPadding!.strides)
        case let (.allowed(flags)?, .allowed?):
            // Two boolean masks: the key padding one becomes an (N, 1, 1, S') bias of 0/-inf.
            mask.allowed = (flags, attention!.strides)
            mask.bias = (try keyPadding!.additiveTensor(), keyPadding!.strides)
        case let (.allowed(flags)?, .additive(tensor)?):
            mask.allowed = (flags, attention!.strides)
            mask.bias = (tensor, keyPadding!.strides)
        case let (.additive(tensor)?, .allowed(flags)?):
            mask.bias = (tensor, attention!.strides)
            mask.allowed = (flags, keyPadding!.strides)
        case let (.additive(attentionBias)?, .additive(paddingBias)?):
            mask.bias = try summedBias(attention!, attentionBias, paddingBias, batch: keyPadding!.batch)
        }
        return mask
    }

    /// `attention + keyPadding` as one `(N, heads, rows, S')` bias (PyTorch's merged mask,
    /// without its head expansion when the attention mask has none).
    private static func summedBias(
        _ attention: CanonicalMask, _ attentionBias: Tensor, _ paddingBias: Tensor, batch: Int
    ) throws -> (tensor: Tensor, strides: ScoreStrides) {
        let (heads, rows, columns) = (attention.heads, attention.rows, attention.columns)
        let a = attentionBias.scalars, p = paddingBias.scalars
        let attentionBatchStride = attention.batch == 1 ? 0 : heads * rows * columns
        let count = try elementCount(of: [batch, heads, rows, columns], argument: "attentionMask")
        try checkAllocatable(count, of: Float.self, argument: "attentionMask")
        var scalars = [Float](repeating: 0, count: count)
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
                    try multiplyMatrices(
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
