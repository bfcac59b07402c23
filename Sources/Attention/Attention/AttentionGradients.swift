/// The gradients of a scaled dot-product attention call with respect to its inputs: what
/// ``scaledDotProductAttentionGradients(query:key:value:outputGradient:mask:scale:dropout:maskedRows:threads:algorithm:layout:)``
/// returns.
///
/// ```swift
/// let grads = try scaledDotProductAttentionGradients(
///     query: q, key: k, value: v, outputGradient: dOut, mask: .causal(.topLeft))
/// print(grads.query.shape, grads.key.shape, grads.value.shape)   // shaped as q, k, v
/// ```
public struct AttentionGradients: Sendable, Equatable {
    /// The gradient with respect to the query, shaped as the query.
    public var query: Tensor
    /// The gradient with respect to the key, shaped as the key: with grouped-query attention,
    /// summed over the query heads that share each key head.
    public var key: Tensor
    /// The gradient with respect to the value, shaped as the value (summed likewise).
    public var value: Tensor
    /// The gradient with respect to `mask.bias`, shaped as the bias (summed over the dimensions
    /// it was broadcast along), or `nil` when the call had no bias.
    public var bias: Tensor?

    /// Creates gradients from their parts.
    public init(query: Tensor, key: Tensor, value: Tensor, bias: Tensor? = nil) {
        (self.query, self.key, self.value, self.bias) = (query, key, value, bias)
    }
}

/// The gradients of `sum(output ∘ outputGradient)`, where `output` is
/// ``scaledDotProductAttention(query:key:value:mask:scale:dropout:maskedRows:threads:algorithm:layout:outputDType:)``
/// of the same arguments: the vector-Jacobian product a backward pass needs. Runs the forward
/// (for its log-sum-exp), then the backward kernels; to reuse a forward already computed, pass
/// it to ``scaledDotProductAttentionGradients(query:key:value:forward:outputGradient:mask:scale:dropout:maskedRows:threads:algorithm:layout:)``.
///
/// The fused backward recomputes the attention weights tile by tile from the log-sum-exp
/// (FlashAttention-2), so memory stays linear in the lengths; every mask, grouped-query
/// attention, dropout (the forward's keep decisions, recomputed from its seed) and masked-row
/// policy is differentiated as the forward computes it. A row with no visible key contributes
/// nothing with `.zero`; with `.meanOfValues` its uniform weights reach the value's gradient
/// only; with `.nan` it makes its query row's gradient and its key and value head's NaN. The
/// result is the same for any thread count.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let q = try Tensor(randomNormal: [2, 8, 16, 64], using: &rng)
/// let k = try Tensor(randomNormal: [2, 2, 40, 64], using: &rng)
/// let v = try Tensor(randomNormal: [2, 2, 40, 32], using: &rng)
/// let dOut = try Tensor(randomNormal: [2, 8, 16, 32], using: &rng)
/// let grads = try scaledDotProductAttentionGradients(
///     query: q, key: k, value: v, outputGradient: dOut, mask: .causal(.bottomRight))
/// // grads.key.shape == [2, 2, 40, 64]: summed over the 4 query heads of each key head
/// ```
///
/// - Parameters:
///   - query: `(B, Hq, Lq, Dqk)`, `(Hq, Lq, Dqk)` or `(Lq, Dqk)`, `float32`.
///   - key: `(B, Hkv, Lk, Dqk)`, `(Hkv, Lk, Dqk)` or `(Lk, Dqk)`, `float32`, with `Hq % Hkv == 0`.
///   - value: `(B, Hkv, Lk, Dv)`, `(Hkv, Lk, Dv)` or `(Lk, Dv)`, `float32`.
///   - outputGradient: the gradient of the loss with respect to the output, `float32`, shaped
///     as the output.
///   - mask: as the forward's; its bias, when given, gets a gradient.
///   - scale: as the forward's; `nil` for `1 / √Dqk`.
///   - dropout: as the forward's: the same seed gives the same keep decisions.
///   - maskedRows: as the forward's.
///   - threads: the threads this call may use, in `1...AttentionBackend.maximumThreadCount`;
///     `nil` for `AttentionBackend.threadCount`. The result does not depend on it.
///   - algorithm: `.fused` (the default) or the `.unfused` reference backward.
///   - layout: `.heads` (the default) or `.sequence`, as the forward's; the gradients have the
///     inputs' layout.
/// - Returns: the gradients, shaped as the query, key, value and bias.
/// - Throws: the forward's errors; `AttentionError.shapeMismatch` naming `"outputGradient"` with
///   both shapes; `.unsupportedDType` for a half-precision `"query"`, `"key"`, `"value"` or
///   `"outputGradient"`.
public func scaledDotProductAttentionGradients(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    outputGradient: Tensor,
    mask: AttentionMask = .unmasked,
    scale: Float? = nil,
    dropout: Dropout? = nil,
    maskedRows: MaskedRowPolicy = .zero,
    threads: Int? = nil,
    algorithm: AttentionAlgorithm = .fused,
    layout: AttentionLayout = .heads
) throws -> AttentionGradients {
    let forward = try scaledDotProductAttentionWithLogSumExp(
        query: query, key: key, value: value, mask: mask, scale: scale, dropout: dropout, maskedRows: maskedRows,
        threads: threads, algorithm: algorithm, layout: layout)
    return try scaledDotProductAttentionGradients(
        query: query, key: key, value: value, forward: forward, outputGradient: outputGradient, mask: mask,
        scale: scale, dropout: dropout, maskedRows: maskedRows, threads: threads, algorithm: algorithm, layout: layout)
}

/// The gradients of `sum(forward.output ∘ outputGradient)` from a forward already computed by
/// ``scaledDotProductAttentionWithLogSumExp(query:key:value:mask:scale:dropout:maskedRows:threads:algorithm:layout:outputDType:)``
/// with the same arguments: nothing of the forward is recomputed but the attention weights,
/// tile by tile, from its log-sum-exp.
///
/// ```swift
/// let forward = try scaledDotProductAttentionWithLogSumExp(query: q, key: k, value: v)
/// // ... the loss, and its gradient dOut with respect to forward.output ...
/// let grads = try scaledDotProductAttentionGradients(
///     query: q, key: k, value: v, forward: forward, outputGradient: dOut)
/// ```
///
/// - Parameters:
///   - query: `(B, Hq, Lq, Dqk)`, `(Hq, Lq, Dqk)` or `(Lq, Dqk)`, `float32`.
///   - key: `(B, Hkv, Lk, Dqk)`, `(Hkv, Lk, Dqk)` or `(Lk, Dqk)`, `float32`, with `Hq % Hkv == 0`.
///   - value: `(B, Hkv, Lk, Dv)`, `(Hkv, Lk, Dv)` or `(Lk, Dv)`, `float32`.
///   - forward: the output and log-sum-exp of the forward call, `float32`.
///   - outputGradient: the gradient of the loss with respect to the output, `float32`, shaped
///     as the output.
///   - mask: as the forward's; its bias, when given, gets a gradient.
///   - scale: as the forward's; `nil` for `1 / √Dqk`.
///   - dropout: as the forward's: the same seed gives the same keep decisions.
///   - maskedRows: as the forward's.
///   - threads: the threads this call may use, in `1...AttentionBackend.maximumThreadCount`;
///     `nil` for `AttentionBackend.threadCount`. The result does not depend on it.
///   - algorithm: `.fused` (the default) or the `.unfused` reference backward.
///   - layout: `.heads` (the default) or `.sequence`, as the forward's; the gradients have the
///     inputs' layout.
/// - Returns: the gradients, shaped as the query, key, value and bias.
/// - Throws: as that function; also `.shapeMismatch` naming `"forward.output"` or
///   `"forward.logSumExp"` when they do not fit the arguments.
public func scaledDotProductAttentionGradients(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    forward: AttentionOutput,
    outputGradient: Tensor,
    mask: AttentionMask = .unmasked,
    scale: Float? = nil,
    dropout: Dropout? = nil,
    maskedRows: MaskedRowPolicy = .zero,
    threads: Int? = nil,
    algorithm: AttentionAlgorithm = .fused,
    layout: AttentionLayout = .heads
) throws -> AttentionGradients {
    let problem = try AttentionProblem(
        query: query, key: key, value: value, mask: mask, scale: scale, dropout: dropout,
        maskedRows: maskedRows, threads: threads, layout: layout)
    try problem.validateGradientInputs(query: query, key: key, value: value, outputGradient: outputGradient)
    for (name, tensor, shape) in [
        ("forward.output", forward.output, problem.outputShape),
        ("forward.logSumExp", forward.logSumExp, problem.logSumExpShape),
    ] {
        guard tensor.shape == shape else {
            throw AttentionError.shapeMismatch(
                argument: name, expected: "\(shape), as the forward of \(problem.context) gives", actual: tensor.shape)
        }
        guard tensor.dtype == .float32 else {
            throw AttentionError.unsupportedDType(
                argument: name, dtype: tensor.dtype, reason: "the backward pass reads a float32 forward")
        }
    }
    return try problem.gradients(forward: forward, outputGradient: outputGradient, algorithm: algorithm)
}

extension AttentionProblem {
    /// The backward's extra rules: float32 inputs, and an output gradient shaped as the output.
    func validateGradientInputs(
        query: Tensor, key: Tensor, value: Tensor, outputGradient: Tensor
    ) throws(AttentionError) {
        for (name, tensor) in [("query", query), ("key", key), ("value", value), ("outputGradient", outputGradient)] {
            guard tensor.dtype == .float32 else {
                throw .unsupportedDType(
                    argument: name, dtype: tensor.dtype, reason: "the backward pass takes float32 tensors for now")
            }
        }
        guard outputGradient.shape == outputShape else {
            throw .shapeMismatch(
                argument: "outputGradient", expected: "\(outputShape), the output's shape for \(context)",
                actual: outputGradient.shape)
        }
    }

    /// Runs the backward kernels into new gradient tensors. A batch, a query or a key of length
    /// 0 needs no kernel: what the empty sums give (zeros, or empty tensors).
    func gradients(
        forward: AttentionOutput, outputGradient: Tensor, algorithm: AttentionAlgorithm
    ) throws(AttentionError) -> AttentionGradients {
        let q = try Tensor(uninitializedShape: queryShape, argument: "query")
        let k = try Tensor(uninitializedShape: keyShape, argument: "key")
        let v = try Tensor(uninitializedShape: valueShape, argument: "value")
        let bias = try call.mask.bias.map { bias throws(AttentionError) in
            try Tensor(uninitializedShape: bias.tensor.shape, argument: "mask.bias")
        }
        guard batch > 0, lengthQ > 0, lengthK > 0 else {
            return AttentionGradients(
                query: q.filled(with: 0), key: k.filled(with: 0), value: v.filled(with: 0), bias: bias?.filled(with: 0))
        }
        func heads(_ tensor: Tensor, heads: Int, length: Int, dim: Int) -> StridedHeads {
            StridedHeads(dense: tensor, layout: layout, batch: batch, length: length, heads: heads, dim: dim)
        }
        var call = call
        call.algorithm = algorithm
        try call.backward(
            output: heads(forward.output, heads: headsQ, length: lengthQ, dim: dimV), logSumExp: forward.logSumExp,
            outputGradient: heads(outputGradient, heads: headsQ, length: lengthQ, dim: dimV),
            into: AttentionGradientHeads(
                query: heads(q, heads: headsQ, length: lengthQ, dim: dimQK),
                key: heads(k, heads: headsKV, length: lengthK, dim: dimQK),
                value: heads(v, heads: headsKV, length: lengthK, dim: dimV), bias: bias),
            context: context)
        return AttentionGradients(query: q, key: k, value: v, bias: bias)
    }
}
