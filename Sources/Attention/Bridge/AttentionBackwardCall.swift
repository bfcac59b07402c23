internal import CAttention

/// The tensors one backward call writes: the gradients of the query, key and value heads, and of
/// the bias when there is one.
struct AttentionGradientHeads {
    var query: StridedHeads
    var key: StridedHeads
    var value: StridedHeads
    /// The bias's gradient, a dense tensor of the bias's shape, read through the bias's strides
    /// (a stride of 0 sums over that dimension).
    var bias: Tensor?
}

extension AttentionKernelCall {
    /// Throws unless the backward kernels differentiate a call with this dropout: the check the
    /// backward makes, also made by a recording forward so that it fails before any work.
    /// Broadcast dropout (one keep mask for every batch and head) is differentiated one head at
    /// a time, as its forward runs, which needs each query head to have its own key/value head.
    ///
    /// - Throws: `AttentionError.unsupported` for broadcast dropout at a probability above 0 with
    ///   grouped-query heads.
    static func requireBackward(
        dropout: Dropout?, broadcastDropout: Bool, queryHeads: Int, keyValueHeads: Int
    ) throws(AttentionError) {
        if broadcastDropout, let dropout, dropout.probability > 0, queryHeads != keyValueHeads {
            throw .unsupported(
                feature: "the backward pass of broadcast dropout over grouped-query heads",
                reason: "it runs one head at a time, and \(queryHeads) query heads share \(keyValueHeads) key/value heads")
        }
    }

    /// Runs `attn_backward` (or `attn_backward_unfused`) for this call: the gradients of
    /// `sum(output ∘ outputGradient)` into `gradients`, from the `output` and `logSumExp` this
    /// call's forward wrote. Every size is at least 1; the tensors are `float32`, and the
    /// gradients' storage is owned uniquely by the caller (the kernel writes through it).
    ///
    /// - Throws: `AttentionError.unsupported` for broadcast dropout; otherwise the kernel's
    ///   status, mapped.
    func backward(
        output: StridedHeads, logSumExp: Tensor, outputGradient: StridedHeads, into gradients: AttentionGradientHeads,
        context: @autoclosure () -> String
    ) throws(AttentionError) {
        try Self.requireBackward(
            dropout: dropout, broadcastDropout: broadcastDropout, queryHeads: query.heads, keyValueHeads: key.heads)
        if broadcastDropout, let dropout, dropout.probability > 0, gradients.bias != nil {
            throw .unsupported(
                feature: "the bias gradient under broadcast dropout",
                reason: "the backward runs one head at a time, and a bias shared by heads would need their sum")
        }
        func mutable(_ pointer: UnsafeRawPointer?) -> UnsafeMutableRawPointer? { pointer.map { UnsafeMutableRawPointer(mutating: $0) } }
        let status = withExtendedLifetime((self, output, logSumExp, outputGradient, gradients)) {
            withKernelParams(
                output: mutable(output.pointer), outputDType: output.dtype, outputStrides: output.strides,
                logSumExp: logSumExp.storage.buffer.baseAddress
            ) { params in
                var backward = attn_backward_params_default()
                backward.forward = params
                (backward.dout, backward.dout_stride) = (outputGradient.pointer, outputGradient.strides)
                (backward.dq, backward.dq_stride) = (mutable(gradients.query.pointer), gradients.query.strides)
                (backward.dk, backward.dk_stride) = (mutable(gradients.key.pointer), gradients.key.strides)
                (backward.dv, backward.dv_stride) = (mutable(gradients.value.pointer), gradients.value.strides)
                if let bias = gradients.bias, let strides = mask.bias?.strides {
                    (backward.dbias, backward.dbias_stride) = (bias.storage.buffer.baseAddress, strides.kernelValue)
                }
                let run = algorithm == .fused ? attn_backward : attn_backward_unfused
                guard broadcastDropout, params.dropout_p > 0 else { return run(&backward) }
                return forEachHead(backward, run: run)
            }
        }
        let function = algorithm == .fused ? "attn_backward" : "attn_backward_unfused"
        if let error = AttentionError(status: status, function: function, context: context()) {
            throw error
        }
    }

    /// The backward of broadcast dropout: one single-head call per (batch, head), each drawing
    /// the keep decisions of head (0, 0), as the forward's (`forEachHead` of the forward). Every
    /// call writes its own slices of dq, dk and dv (one key/value head per query head, no bias
    /// gradient: `backward` checked both).
    private func forEachHead(
        _ whole: attn_backward_params, run: (UnsafePointer<attn_backward_params>?) -> attn_status
    ) -> attn_status {
        let f = whole.forward
        func advanced(_ base: UnsafeRawPointer?, _ strides: (Int64, Int64, Int64), _ b: Int, _ h: Int, _ size: Int) -> UnsafeRawPointer? {
            base.map { $0 + Int(Int64(b) * strides.0 + Int64(h) * strides.1) * size }
        }
        func mutable(_ base: UnsafeMutableRawPointer?, _ strides: (Int64, Int64, Int64), _ b: Int, _ h: Int) -> UnsafeMutableRawPointer? {
            base.map { $0 + Int(Int64(b) * strides.0 + Int64(h) * strides.1) * MemoryLayout<Float>.size }
        }
        var single = whole
        (single.forward.batch, single.forward.heads_q, single.forward.heads_kv) = (1, 1, 1)
        for b in 0..<query.batch {
            for h in 0..<query.heads {
                single.forward.q = advanced(f.q, f.q_stride, b, h, query.dtype.byteSize)
                single.forward.k = advanced(f.k, f.k_stride, b, h, key.dtype.byteSize)
                single.forward.v = advanced(f.v, f.v_stride, b, h, value.dtype.byteSize)
                single.forward.out = mutable(f.out, f.out_stride, b, h)
                single.forward.lse = f.lse.map { $0 + (b * query.heads + h) * query.length }
                single.forward.key_len = f.key_len.map { $0 + b }
                single.forward.mask = f.mask.map { $0 + Int(Int64(b) * f.mask_stride.0 + Int64(h) * f.mask_stride.1) }
                single.forward.bias = f.bias.map { $0 + Int(Int64(b) * f.bias_stride.0 + Int64(h) * f.bias_stride.1) }
                single.dout = advanced(whole.dout, whole.dout_stride, b, h, MemoryLayout<Float>.size)
                single.dq = mutable(whole.dq, whole.dq_stride, b, h)
                single.dk = mutable(whole.dk, whole.dk_stride, b, h)
                single.dv = mutable(whole.dv, whole.dv_stride, b, h)
                let status = run(&single)
                if status != ATTN_OK { return status }
            }
        }
        return ATTN_OK
    }
}
