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
    ///
    /// - Throws: `AttentionError.unsupported` for broadcast dropout (one keep mask shared by every
    ///   batch and head) at a probability above 0.
    static func requireBackward(dropout: Dropout?, broadcastDropout: Bool) throws(AttentionError) {
        if broadcastDropout, let dropout, dropout.probability > 0 {
            throw .unsupported(
                feature: "the backward pass of broadcast dropout",
                reason: "the per-(batch, head) dropout streams have no backward kernel yet")
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
        try Self.requireBackward(dropout: dropout, broadcastDropout: broadcastDropout)
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
                return algorithm == .fused ? attn_backward(&backward) : attn_backward_unfused(&backward)
            }
        }
        let function = algorithm == .fused ? "attn_backward" : "attn_backward_unfused"
        if let error = AttentionError(status: status, function: function, context: context()) {
            throw error
        }
    }
}
