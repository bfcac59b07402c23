internal import CAttention

/// One call of the attention kernels (`attn_forward` or `attn_forward_unfused`) on heads read in
/// place through explicit strides: the one place that fills `attn_params` for them.
///
/// The caller validates the problem (sizes at least 1, `Hq % Hkv == 0`, matching batch, lengths
/// and head sizes, mask and bias strides inside their tensors) and allocates `output`; the
/// kernels' own checks remain as a safety net and surface as `AttentionError.kernelFailure`.
///
/// ```swift
/// var call = AttentionKernelCall(query: q, key: k, value: v, output: out)
/// call.causal = ATTN_CAUSAL_TOP_LEFT
/// try call.run(context: "query \(query.shape)")
/// ```
struct AttentionKernelCall {
    /// The query heads, `(B, Hq, Lq, Dqk)` by strides.
    var query: StridedHeads
    /// The key heads, `(B, Hkv, Lk, Dqk)` by strides.
    var key: StridedHeads
    /// The value heads, `(B, Hkv, Lk, Dv)` by strides.
    var value: StridedHeads
    /// Where the output `(B, Hq, Lq, Dv)` is written, by strides; its tensor is new and uniquely
    /// owned by the caller.
    var output: StridedHeads
    /// Receives each row's log-sum-exp, `(B, Hq, Lq)` contiguous, or `nil`.
    var logSumExp: Tensor? = nil
    /// The scores' scale; 0 selects `1/√Dqk`.
    var scale: Float = 0
    /// The causal alignment.
    var causal = ATTN_CAUSAL_NONE
    /// The sliding window's bounds, -1 for unbounded.
    var windowLeft: Int64 = -1, windowRight: Int64 = -1
    /// The boolean mask's row-major flags (true attends), read through `maskStrides`, or `nil`.
    var maskValues: [Bool]? = nil
    /// Element strides reading `maskValues` as `(B, Hq, Lq, Lk)`.
    var maskStrides: MaskStrides = (0, 0, 0, 0)
    /// Added to the scores, read through `biasStrides`.
    var bias: Tensor? = nil
    /// Element strides reading `bias` as `(B, Hq, Lq, Lk)`.
    var biasStrides: MaskStrides = (0, 0, 0, 0)
    /// Valid keys per batch (keys at or past the length are masked), or `nil`.
    var keyLengths: [Int64]? = nil
    /// Dropout on the attention weights; `nil` or a zero probability disables it.
    var dropout: Dropout? = nil
    /// Gives every (batch, head) the same dropout stream (Flax's `broadcast_dropout`): one kernel
    /// call per (batch, head), so weight (b, h, i, j) uses the counter `offset + i·Lk + j`.
    var broadcastDropout = false
    /// What a row with no attended key produces.
    var maskedRows = ATTN_MASKED_ROWS_ZERO
    /// Worker threads, 0 for the backend's default.
    var threads: Int32 = 0
    /// Fused (`attn_forward`) or unfused (`attn_forward_unfused`).
    var algorithm: AttentionAlgorithm = .fused

    /// Runs the kernel, writing `output` (and `logSumExp`).
    ///
    /// - Parameter context: describes the problem in a kernel failure's error.
    /// - Throws: `AttentionError` mapped from the kernel's status.
    func run(context: @autoclosure () -> String) throws(AttentionError) {
        var params = attn_params_default()
        params.batch = Int64(query.batch)
        params.heads_q = Int64(query.heads)
        params.heads_kv = Int64(key.heads)
        params.len_q = Int64(query.length)
        params.len_k = Int64(key.length)
        params.dim_qk = Int64(query.dim)
        params.dim_v = Int64(value.dim)
        params.q_stride = query.strides
        params.k_stride = key.strides
        params.v_stride = value.strides
        params.out_stride = output.strides
        params.scale = scale
        params.causal = causal
        params.window_left = windowLeft
        params.window_right = windowRight
        if let dropout, dropout.probability > 0 {
            params.dropout_p = dropout.probability
            params.dropout_seed = dropout.seed
            params.dropout_offset = dropout.offset
        }
        params.masked_rows = maskedRows
        params.num_threads = threads
        params.mask_stride = maskStrides
        params.bias_stride = biasStrides

        // Tensor storage never moves, and `self` keeps the tensors alive until the call returns,
        // so their buffers can be handed to C directly.
        let q = query.pointer, k = key.pointer, v = value.pointer
        let out = output.tensor.storage.buffer.baseAddress.map { $0 + output.offset }
        let lse = logSumExp?.storage.buffer.baseAddress
        let biasBase = bias.map { UnsafePointer($0.storage.buffer.baseAddress) } ?? nil
        let perHead = broadcastDropout && params.dropout_p > 0
        let forward = algorithm == .fused ? attn_forward : attn_forward_unfused

        let status: attn_status = withExtendedLifetime(self) {
            withOptionalBuffer(keyLengths) { keyLengthBase in
                withOptionalBuffer(maskValues) { maskValues in
                    // Bool is one byte holding 0 or 1: the uint8_t "nonzero attends" of attn.h.
                    let maskBase = maskValues.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) }
                    guard perHead else {
                        (params.q, params.k, params.v, params.out, params.lse) = (q, k, v, out, lse)
                        (params.key_len, params.mask, params.bias) = (keyLengthBase, maskBase, biasBase)
                        return forward(&params)
                    }
                    return forEachHead(params, q: q, k: k, v: v, out: out, lse: lse, keyLengths: keyLengthBase,
                                       mask: maskBase, bias: biasBase, forward: forward)
                }
            }
        }
        let function = algorithm == .fused ? "attn_forward" : "attn_forward_unfused"
        if let error = AttentionError(status: status, function: function, context: context()) {
            throw error
        }
    }

    /// Broadcast dropout: one call per (b, h) with batch = heads = 1, so the dropout counter of
    /// weight (i, j) is `offset + i·Lk + j` for every b and h. Stops at the first failure.
    private func forEachHead(
        _ params: attn_params, q: UnsafePointer<Float>?, k: UnsafePointer<Float>?, v: UnsafePointer<Float>?,
        out: UnsafeMutablePointer<Float>?, lse: UnsafeMutablePointer<Float>?, keyLengths: UnsafePointer<Int64>?,
        mask: UnsafePointer<UInt8>?, bias: UnsafePointer<Float>?,
        forward: (UnsafePointer<attn_params>?) -> attn_status
    ) -> attn_status {
        let (qs, ks, vs, os) = (params.q_stride, params.k_stride, params.v_stride, params.out_stride)
        let (ms, bs) = (params.mask_stride, params.bias_stride)
        let (heads, length) = (query.heads, query.length)
        let group = heads / key.heads
        var single = params
        single.batch = 1
        single.heads_q = 1
        single.heads_kv = 1
        for b in 0..<query.batch {
            for h in 0..<heads {
                let (b64, h64, kv64) = (Int64(b), Int64(h), Int64(h / group))
                single.q = q.map { $0 + Int(b64 * qs.0 + h64 * qs.1) }
                single.k = k.map { $0 + Int(b64 * ks.0 + kv64 * ks.1) }
                single.v = v.map { $0 + Int(b64 * vs.0 + kv64 * vs.1) }
                single.out = out.map { $0 + Int(b64 * os.0 + h64 * os.1) }
                single.lse = lse.map { $0 + (b * heads + h) * length }
                single.key_len = keyLengths.map { $0 + b }
                single.mask = mask.map { $0 + Int(b64 * ms.0 + h64 * ms.1) }
                single.bias = bias.map { $0 + Int(b64 * bs.0 + h64 * bs.1) }
                let status = forward(&single)
                if status != ATTN_OK { return status }
            }
        }
        return ATTN_OK
    }
}

/// Element strides of a boolean mask or bias against `(B, Hq, Lq, Lk)`.
typealias MaskStrides = (Int64, Int64, Int64, Int64)

extension AttentionMask.Causal {
    /// The kernels' spelling of the alignment.
    var kernelValue: attn_causal {
        switch self {
        case .none: ATTN_CAUSAL_NONE
        case .topLeft: ATTN_CAUSAL_TOP_LEFT
        case .bottomRight: ATTN_CAUSAL_BOTTOM_RIGHT
        }
    }
}

extension MaskedRowPolicy {
    /// The kernels' spelling of the policy.
    var kernelValue: attn_masked_rows {
        switch self {
        case .zero: ATTN_MASKED_ROWS_ZERO
        case .nan: ATTN_MASKED_ROWS_NAN
        case .meanOfValues: ATTN_MASKED_ROWS_MEAN
        }
    }
}

/// Calls `body` with a pointer to the array's elements, or with `nil` when there is no array.
func withOptionalBuffer<Element, Result>(
    _ array: [Element]?, _ body: (UnsafePointer<Element>?) -> Result
) -> Result {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}
