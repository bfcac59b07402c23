/// How the attention is computed. Both give the same results up to rounding, with identical
/// masking and dropout decisions.
///
/// ```swift
/// let reference = try scaledDotProductAttention(query: q, key: k, value: v, algorithm: .unfused)
/// ```
public enum AttentionAlgorithm: Sendable, Equatable, Hashable, CaseIterable {
    /// Flash-style: tiles of queries against blocks of keys with an online softmax; the score
    /// matrix never exists. Workspace independent of the sequence lengths. The default.
    case fused
    /// The textbook path, one (batch, head) at a time: the full Lq × Lk score matrix, masked,
    /// a row softmax, then a product with V. Workspace: threads × Lq × Lk floats. For comparisons
    /// and benchmarks.
    case unfused
}

/// How the heads of the query, key and value tensors are laid out in memory.
///
/// Attention reads both in place, through strides: no transpose or copy either way.
///
/// ```swift
/// // Projections give (B, L, H·D); reshaped to (B, L, H, D) they are read as they are.
/// let out = try scaledDotProductAttention(query: q, key: k, value: v, layout: .sequence)
/// ```
public enum AttentionLayout: Sendable, Equatable, Hashable, CaseIterable {
    /// `(B, H, L, D)`, `(H, L, D)` or `(L, D)`: heads before positions (PyTorch's SDPA, MLX).
    case heads
    /// `(B, L, H, D)`, `(L, H, D)` or `(L, D)`: positions before heads (Flax, and any `(…, L, H·D)`
    /// projection). The log-sum-exp is still `(B, H, L)`.
    case sequence
}

/// The result of ``scaledDotProductAttentionWithLogSumExp(query:key:value:mask:scale:dropout:maskedRows:threads:algorithm:layout:outputDType:)``.
///
/// ```swift
/// let result = try scaledDotProductAttentionWithLogSumExp(query: q, key: k, value: v)
/// print(result.output.shape, result.logSumExp.shape)   // [2, 8, 16, 64] [2, 8, 16]
/// ```
public struct AttentionOutput: Sendable, Equatable {
    /// The attention output, shaped like the query with the values' feature size:
    /// `(B, Hq, Lq, Dv)`, `(Hq, Lq, Dv)` or `(Lq, Dv)`.
    public var output: Tensor

    /// The natural logarithm of each row's sum of `exp(scores)` (scaled scores plus bias, over
    /// the visible keys, before dropout), shaped like the query without its feature dimension:
    /// `(B, Hq, Lq)`, `(Hq, Lq)` or `(Lq)`. `-infinity` for a row with no visible key.
    /// With it, the attention weights are `exp(score - logSumExp)`, as a backward pass needs.
    public var logSumExp: Tensor

    /// Creates a result from its parts.
    public init(output: Tensor, logSumExp: Tensor) {
        self.output = output
        self.logSumExp = logSumExp
    }
}

/// Scaled dot-product attention, computed by the fused CPU kernels:
/// `softmax(scale · Q Kᵀ + bias, masked) · V` for every batch and query head.
///
/// Shapes (all three of the same rank):
///
/// | rank | query            | key              | value           | result          |
/// |------|------------------|------------------|-----------------|-----------------|
/// | 4    | (B, Hq, Lq, Dqk) | (B, Hkv, Lk, Dqk)| (B, Hkv, Lk, Dv)| (B, Hq, Lq, Dv) |
/// | 3    | (Hq, Lq, Dqk)    | (Hkv, Lk, Dqk)   | (Hkv, Lk, Dv)   | (Hq, Lq, Dv)    |
/// | 2    | (Lq, Dqk)        | (Lk, Dqk)        | (Lk, Dv)        | (Lq, Dv)        |
///
/// Query head h reads key/value head `h / (Hq / Hkv)`, so grouped-query (`Hkv` divides `Hq`)
/// and multi-query (`Hkv == 1`) attention need no repeated keys. `Lq` and `Lk` may differ, as may
/// `Dqk` and `Dv`. Every dimension must be at least 1.
///
/// Reference math, for query row i of batch b and head h:
///
/// ```
/// s[j] = scale · Σ_d q[b, h, i, d] · k[b, h / g, j, d] + bias[b, h, i, j]   (-∞ where masked)
/// p[j] = exp(s[j] - logSumExp),  logSumExp = log Σ_j exp(s[j])
/// p[j] = keep(b, h, i, j) ? p[j] / (1 - dropout) : 0                          (with dropout)
/// out[b, h, i, :] = Σ_j p[j] · v[b, h / g, j, :]
/// ```
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let q = try Tensor(randomNormal: [2, 8, 16, 64], using: &rng)
/// let k = try Tensor(randomNormal: [2, 2, 40, 64], using: &rng)   // 2 KV heads: GQA
/// let v = try Tensor(randomNormal: [2, 2, 40, 32], using: &rng)
/// let out = try scaledDotProductAttention(
///     query: q, key: k, value: v, mask: AttentionMask(causal: .bottomRight))
/// // out.shape == [2, 8, 16, 32]
/// ```
///
/// The inputs are read in place; only the result is allocated.
///
/// Half precision: query, key and value may each be `float32`, `float16` or `bfloat16`, in any
/// combination (a `float32` query over a `bfloat16` cache, say), read in place and widened
/// exactly; products, the softmax and the sums are computed in `Float`, and a half-precision
/// result is rounded to nearest even once. The result has the query's dtype unless
/// `outputDType` says otherwise; the bias and the log-sum-exp are `float32`. Against the exact
/// attention of the inputs as stored, each element is within `tol · max(1, max |out|)`, with
/// `tol` 1e-5 for a `float32` result, 5e-4 for `float16` and 4e-3 for `bfloat16`.
///
/// ```swift
/// let q16 = try q.converted(to: .bfloat16), k16 = try k.converted(to: .bfloat16)
/// let out = try scaledDotProductAttention(query: q16, key: k16, value: v, outputDType: .float32)
/// ```
///
/// - Parameters:
///   - query: `(B, Hq, Lq, Dqk)`, `(Hq, Lq, Dqk)` or `(Lq, Dqk)`.
///   - key: `(B, Hkv, Lk, Dqk)`, `(Hkv, Lk, Dqk)` or `(Lk, Dqk)`, with `Hq % Hkv == 0`.
///   - value: `(B, Hkv, Lk, Dv)`, `(Hkv, Lk, Dv)` or `(Lk, Dv)`.
///   - mask: causal masking, window, key lengths, boolean mask and additive bias; none by default.
///   - scale: multiplies `Q Kᵀ`; `nil` (the default) for `1 / √Dqk`. Finite and nonzero.
///   - dropout: dropout on the attention weights; `nil` (the default) for none.
///   - maskedRows: what a row with every score masked produces; zeros by default.
///   - threads: the threads this call may use, in `1...AttentionBackend.maximumThreadCount`;
///     `nil` (the default) for `AttentionBackend.threadCount`.
///   - algorithm: `.fused` (the default) or the `.unfused` reference path.
///   - layout: `.heads` (the default) for `(B, H, L, D)` tensors; `.sequence` for `(B, L, H, D)`,
///     the layout projections produce, read in place. The output has the query's layout.
///   - outputDType: the result's dtype; `nil` (the default) for the query's.
/// - Returns: `(B, Hq, Lq, Dv)`, `(Hq, Lq, Dv)` or `(Lq, Dv)`, as the query's rank.
/// - Throws: `AttentionError.shapeMismatch` naming the argument (`"query"`, `"key"`, `"value"`,
///   `"mask.keyLengths"`, `"mask.booleanMask"`, `"mask.bias"`) whose shape does not fit;
///   `.unsupportedDType` (`"mask.bias"`) for a half-precision bias;
///   `.invalidArgument` for an out-of-range value (`"scale"`, `"threads"`,
///   `"dropout.probability"`, `"mask.window.left"`, `"mask.keyLengths[1]"`, an empty dimension);
///   `.outOfMemory`, `.overflow`, `.unsupported` or `.kernelFailure` from the kernels.
public func scaledDotProductAttention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: AttentionMask = .unmasked,
    scale: Float? = nil,
    dropout: Dropout? = nil,
    maskedRows: MaskedRowPolicy = .zero,
    threads: Int? = nil,
    algorithm: AttentionAlgorithm = .fused,
    layout: AttentionLayout = .heads,
    outputDType: Tensor.DType? = nil
) throws -> Tensor {
    let problem = try AttentionProblem(
        query: query, key: key, value: value, mask: mask, scale: scale, dropout: dropout,
        maskedRows: maskedRows, threads: threads, layout: layout, outputDType: outputDType)
    return try problem.run(algorithm: algorithm, returningLogSumExp: false).output
}

/// Scaled dot-product attention that also returns each query row's log-sum-exp, for a backward
/// pass or for merging attention computed over separate blocks of keys.
///
/// Same arguments, shapes and errors as
/// ``scaledDotProductAttention(query:key:value:mask:scale:dropout:maskedRows:threads:algorithm:layout:outputDType:)``.
///
/// ```swift
/// let result = try scaledDotProductAttentionWithLogSumExp(
///     query: q, key: k, value: v, mask: AttentionMask(causal: .topLeft))
/// let out = result.output        // (B, Hq, Lq, Dv)
/// let lse = result.logSumExp     // (B, Hq, Lq); -infinity where a row sees no key
/// ```
public func scaledDotProductAttentionWithLogSumExp(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: AttentionMask = .unmasked,
    scale: Float? = nil,
    dropout: Dropout? = nil,
    maskedRows: MaskedRowPolicy = .zero,
    threads: Int? = nil,
    algorithm: AttentionAlgorithm = .fused,
    layout: AttentionLayout = .heads,
    outputDType: Tensor.DType? = nil
) throws -> AttentionOutput {
    let problem = try AttentionProblem(
        query: query, key: key, value: value, mask: mask, scale: scale, dropout: dropout,
        maskedRows: maskedRows, threads: threads, layout: layout, outputDType: outputDType)
    let (output, logSumExp) = try problem.run(algorithm: algorithm, returningLogSumExp: true)
    // run allocates the log-sum-exp whenever it is asked for.
    return AttentionOutput(output: output, logSumExp: logSumExp!)
}
