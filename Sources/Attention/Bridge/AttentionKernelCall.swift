internal import CAttention

/// What the attention kernels mask, resolved against the scores `(B, Hq, Lq, Lk)`: causality,
/// a window, key lengths, and at most one boolean mask and one additive bias, each read in place
/// through ``ScoreStrides``.
struct KernelMask {
    var causal: AttentionMask.Causal = .none
    var window: AttentionMask.Window = .unbounded
    /// Valid keys per batch (keys at or past the length are masked), or `nil`.
    var keyLengths: [Int]? = nil
    /// Row-major flags, `true` attends.
    var allowed: (values: [Bool], strides: ScoreStrides)? = nil
    /// Added to the scaled scores; `-infinity` masks.
    var bias: (tensor: Tensor, strides: ScoreStrides)? = nil
}

/// One call of the attention kernels (`attn_forward` or `attn_forward_unfused`): the one place
/// that turns tensors, a mask and options into `attn_params` and runs them.
///
/// The caller validates the problem (heads and head sizes at least 1, `Hq % Hkv == 0`, matching
/// batch, lengths and head sizes, mask and bias strides inside their tensors); the kernels' own
/// checks remain as a safety net and surface as `AttentionError.kernelFailure`. A batch or a
/// sequence may be empty (the library's rule, PyTorch's): see ``run(outputShape:outputLayout:logSumExpShape:context:)``.
///
/// ```swift
/// var call = AttentionKernelCall(query: q, key: k, value: v)
/// call.mask.causal = .topLeft
/// let out = try call.run(outputShape: [b, lq, hq * dv], outputLayout: .sequence, context: "...").output
/// ```
struct AttentionKernelCall {
    /// The query heads, `(B, Hq, Lq, Dqk)` by strides.
    var query: StridedHeads
    /// The key heads, `(B, Hkv, Lk, Dqk)` by strides.
    var key: StridedHeads
    /// The value heads, `(B, Hkv, Lk, Dv)` by strides.
    var value: StridedHeads
    var mask = KernelMask()
    /// The scores' scale; `nil` selects `1/√Dqk`.
    var scale: Float? = nil
    /// Dropout on the attention weights; `nil` or a zero probability disables it.
    var dropout: Dropout? = nil
    /// Gives every (batch, head) the same dropout stream (Flax's `broadcast_dropout`): one kernel
    /// call per (batch, head), so weight (b, h, i, j) uses the counter `offset + i·Lk + j`.
    var broadcastDropout = false
    /// What a row with no attended key produces.
    var maskedRows: MaskedRowPolicy = .zero
    /// Worker threads, `nil` for the backend's default.
    var threads: Int? = nil
    /// Fused (`attn_forward`) or unfused (`attn_forward_unfused`).
    var algorithm: AttentionAlgorithm = .fused
    /// The dtype of the output ``run(outputShape:outputLayout:logSumExpShape:context:)``
    /// allocates (``write(into:logSumExp:context:)`` writes its tensor's own). Query, key and
    /// value are read in their tensors' dtypes; the bias and the log-sum-exp are `float32`.
    var outputDType: Tensor.DType = .float32

    init(query: StridedHeads, key: StridedHeads, value: StridedHeads) {
        (self.query, self.key, self.value) = (query, key, value)
    }

    /// Runs the kernel into a new tensor of `outputShape` holding `(B, Hq, Lq, Dv)` in
    /// `outputLayout` (`.sequence`: `(B, Lq, Hq, Dv)` in memory, ready for an output projection).
    /// With no batch or no query the result is empty; with no key it is zeros.
    ///
    /// - Parameters:
    ///   - logSumExpShape: when given, also return each row's log-sum-exp, `(B, Hq, Lq)` in
    ///     memory, in a tensor of this shape.
    ///   - context: describes the problem in an error.
    /// - Throws: `AttentionError` from the allocation or mapped from the kernel's status.
    func run(
        outputShape: [Int], outputLayout: AttentionLayout, logSumExpShape: [Int]? = nil,
        context: @autoclosure () -> String
    ) throws(AttentionError) -> (output: Tensor, logSumExp: Tensor?) {
        let output = try Tensor(uninitializedShape: outputShape, dtype: outputDType, argument: "output")
        let logSumExp = try logSumExpShape.map { shape throws(AttentionError) in
            try Tensor(uninitializedShape: shape, argument: "logSumExp")
        }
        // The kernels take sizes of at least 1. An empty batch, query or head gives an empty
        // result; no key at all gives zeros and a log-sum-exp of -infinity (PyTorch's empty sum).
        if output.count == 0 || key.length == 0 {
            return (output.filled(with: 0), logSumExp?.filled(with: -.infinity))
        }
        let written = StridedHeads(
            dense: output, layout: outputLayout, batch: query.batch, length: query.length, heads: query.heads,
            dim: value.dim)
        try write(into: written, logSumExp: logSumExp, context: context())
        return (output, logSumExp)
    }

    /// Runs the kernel into `output`, heads of a tensor the caller allocated and owns uniquely
    /// (the kernel writes through its storage), and `logSumExp` likewise when given. The sizes
    /// are at least 1 (see ``run(outputShape:outputLayout:logSumExpShape:context:)`` for empty
    /// ones).
    ///
    /// - Throws: `AttentionError` mapped from the kernel's status.
    func write(into output: StridedHeads, logSumExp: Tensor? = nil, context: @autoclosure () -> String) throws(AttentionError) {
        let status = withExtendedLifetime((self, output.tensor, logSumExp)) {
            // Tensor storage never moves, so the buffers can be handed to C directly.
            execute(
                output: output.pointer.map { UnsafeMutableRawPointer(mutating: $0) }, outputDType: output.dtype,
                outputStrides: output.strides, logSumExp: logSumExp?.storage.buffer.baseAddress)
        }
        let function = algorithm == .fused ? "attn_forward" : "attn_forward_unfused"
        if let error = AttentionError(status: status, function: function, context: context()) {
            throw error
        }
    }

    private func execute(
        output: UnsafeMutableRawPointer?, outputDType: Tensor.DType, outputStrides: (Int64, Int64, Int64),
        logSumExp: UnsafeMutablePointer<Float>?
    ) -> attn_status {
        let forward = algorithm == .fused ? attn_forward : attn_forward_unfused
        return withKernelParams(
            output: output, outputDType: outputDType, outputStrides: outputStrides, logSumExp: logSumExp
        ) { params in
            guard broadcastDropout, params.dropout_p > 0 else { return forward(&params) }
            return forEachHead(params, outputDType: outputDType, forward: forward)
        }
    }

    /// Calls `body` with the `attn_params` of this call: its tensors, mask and options, the given
    /// output and log-sum-exp, and pointers valid for the duration of `body`.
    func withKernelParams(
        output: UnsafeMutableRawPointer?, outputDType: Tensor.DType, outputStrides: (Int64, Int64, Int64),
        logSumExp: UnsafeMutablePointer<Float>?, _ body: (inout attn_params) -> attn_status
    ) -> attn_status {
        var params = attn_params_default()
        params.batch = Int64(query.batch)
        params.heads_q = Int64(query.heads)
        params.heads_kv = Int64(key.heads)
        params.len_q = Int64(query.length)
        params.len_k = Int64(key.length)
        params.dim_qk = Int64(query.dim)
        params.dim_v = Int64(value.dim)
        // Each tensor in its own dtype, its strides counting elements of that dtype.
        (params.q, params.q_stride, params.q_dtype) = (query.pointer, query.strides, query.dtype.kernelValue)
        (params.k, params.k_stride, params.k_dtype) = (key.pointer, key.strides, key.dtype.kernelValue)
        (params.v, params.v_stride, params.v_dtype) = (value.pointer, value.strides, value.dtype.kernelValue)
        (params.out, params.out_stride, params.lse) = (output, outputStrides, logSumExp)
        params.out_dtype = outputDType.kernelValue
        params.scale = scale ?? 0
        params.causal = kernelCausal(mask.causal)
        params.window_left = mask.window.left.map(Int64.init) ?? -1
        params.window_right = mask.window.right.map(Int64.init) ?? -1
        if let dropout, dropout.probability > 0 {
            (params.dropout_p, params.dropout_seed, params.dropout_offset) =
                (dropout.probability, dropout.seed, dropout.offset)
        }
        params.masked_rows = kernelMaskedRows(maskedRows)
        params.num_threads = Int32(threads ?? 0)
        if let allowed = mask.allowed { params.mask_stride = allowed.strides.kernelValue }
        if let bias = mask.bias { params.bias_stride = bias.strides.kernelValue }

        let keyLengths = mask.keyLengths?.map(Int64.init)
        return withOptionalBuffer(keyLengths) { keyLengthBase in
            withOptionalBuffer(mask.allowed?.values) { maskValues in
                // Bool is one byte holding 0 or 1: the uint8_t "nonzero attends" of attn.h.
                params.mask = maskValues.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) }
                params.key_len = keyLengthBase
                params.bias = mask.bias.flatMap { bias in bias.tensor.storage.buffer.baseAddress.map { UnsafePointer($0) } }
                return body(&params)
            }
        }
    }

    /// Broadcast dropout: one call per (b, h) with batch = heads = 1, so the dropout counter of
    /// weight (i, j) is `offset + i·Lk + j` for every b and h. Stops at the first failure.
    private func forEachHead(
        _ params: attn_params, outputDType: Tensor.DType, forward: (UnsafePointer<attn_params>?) -> attn_status
    ) -> attn_status {
        let (qs, ks, vs, os) = (params.q_stride, params.k_stride, params.v_stride, params.out_stride)
        let (ms, bs) = (params.mask_stride, params.bias_stride)
        let group = query.heads / key.heads
        // Offsets in elements of each tensor's own dtype, as its strides are.
        func advanced(_ base: UnsafeRawPointer?, by elements: Int64, of dtype: Tensor.DType) -> UnsafeRawPointer? {
            base.map { $0 + Int(elements) * dtype.byteSize }
        }
        var single = params
        (single.batch, single.heads_q, single.heads_kv) = (1, 1, 1)
        for b in 0..<query.batch {
            for h in 0..<query.heads {
                let (b64, h64, kv64) = (Int64(b), Int64(h), Int64(h / group))
                single.q = advanced(params.q, by: b64 * qs.0 + h64 * qs.1, of: query.dtype)
                single.k = advanced(params.k, by: b64 * ks.0 + kv64 * ks.1, of: key.dtype)
                single.v = advanced(params.v, by: b64 * vs.0 + kv64 * vs.1, of: value.dtype)
                single.out = params.out.map { $0 + Int(b64 * os.0 + h64 * os.1) * outputDType.byteSize }
                single.lse = params.lse.map { $0 + (b * query.heads + h) * query.length }
                single.key_len = params.key_len.map { $0 + b }
                single.mask = params.mask.map { $0 + Int(b64 * ms.0 + h64 * ms.1) }
                single.bias = params.bias.map { $0 + Int(b64 * bs.0 + h64 * bs.1) }
                let status = forward(&single)
                if status != ATTN_OK { return status }
            }
        }
        return ATTN_OK
    }
}

extension StridedHeads {
    /// The strides as `attn_params` takes them.
    var strides: (Int64, Int64, Int64) { (Int64(batchStride), Int64(headStride), Int64(positionStride)) }
}

extension ScoreStrides {
    /// The strides as `attn_params` takes them.
    var kernelValue: (Int64, Int64, Int64, Int64) { (Int64(batch), Int64(head), Int64(query), Int64(key)) }
}

/// The kernels' spelling of a causal alignment.
func kernelCausal(_ causal: AttentionMask.Causal) -> attn_causal {
    switch causal {
    case .none: ATTN_CAUSAL_NONE
    case .topLeft: ATTN_CAUSAL_TOP_LEFT
    case .bottomRight: ATTN_CAUSAL_BOTTOM_RIGHT
    }
}

/// The kernels' spelling of a masked-row policy.
func kernelMaskedRows(_ policy: MaskedRowPolicy) -> attn_masked_rows {
    switch policy {
    case .zero: ATTN_MASKED_ROWS_ZERO
    case .nan: ATTN_MASKED_ROWS_NAN
    case .meanOfValues: ATTN_MASKED_ROWS_MEAN
    }
}

/// Calls `body` with a pointer to the array's elements, or with `nil` when there is no array.
func withOptionalBuffer<Element, Result>(
    _ array: [Element]?, _ body: (UnsafePointer<Element>?) -> Result
) -> Result {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}
