// Attention within sequences of different lengths packed end to end: no padding is stored,
// projected or attended to.

/// Scaled dot-product attention within each of several sequences packed end to end, as a
/// transformer over a batch of sentences of different lengths needs it: every token attends only
/// to the tokens of its own sequence, and no padding exists anywhere.
///
/// The tensors hold the sequences' tokens one after another, `T = sequenceLengths.reduce(0, +)`
/// rows in all, each row a token's heads (the layout of a projection's output reshaped to
/// `(T, H, D)`). Sequence i occupies rows `offset_i ..< offset_i + sequenceLengths[i]` of all
/// three. Each sequence is one kernel call on views of the packed tensors (nothing is copied) and
/// writes its rows of the one result.
///
/// ```swift
/// // Three sentences of 5, 12 and 3 tokens, 12 heads of 32: (20, 12, 32) each.
/// let context = try scaledDotProductAttention(
///     packedQuery: q, key: k, value: v, sequenceLengths: [5, 12, 3])
/// // context: (20, 12, 32); row 7 (sentence 1) attended to rows 5 ..< 17 only
/// ```
///
/// - Parameters:
///   - packedQuery: `(T, Hq, Dqk)`.
///   - key: `(T, Hkv, Dqk)`, with `Hq % Hkv == 0`.
///   - value: `(T, Hkv, Dv)`.
///   - sequenceLengths: each sequence's length, non-negative, adding up to T (an empty sequence
///     has no rows).
///   - causal: `.topLeft` (the same as `.bottomRight` here) for a decoder's causal masking
///     within each sequence; `.none` by default.
///   - scale: multiplies `Q Kᵀ`; `nil` for `1/√Dqk`.
///   - threads: the threads each call may use; `nil` for `AttentionBackend.threadCount`.
/// Query, key and value may each be `float32`, `float16` or `bfloat16`; the result has the
/// query's dtype.
///
/// - Returns: `(T, Hq, Dv)`.
/// - Throws: `AttentionError.shapeMismatch` (`"packedQuery"`, `"key"`, `"value"`) for shapes
///   that do not fit; `.invalidArgument` (`"sequenceLengths"`) for a negative length or lengths
///   that do not add up to T; the errors of
///   ``scaledDotProductAttention(query:key:value:mask:scale:dropout:maskedRows:threads:algorithm:layout:outputDType:)``.
public func scaledDotProductAttention(
    packedQuery: Tensor, key: Tensor, value: Tensor, sequenceLengths: [Int],
    causal: AttentionMask.Causal = .none, scale: Float? = nil, threads: Int? = nil
) throws -> Tensor {
    guard packedQuery.rank == 3 else {
        throw AttentionError.shapeMismatch(argument: "packedQuery", expected: "(T, Hq, Dqk)", actual: packedQuery.shape)
    }
    var total = 0
    for (index, length) in sequenceLengths.enumerated() {
        let (sum, overflow) = total.addingReportingOverflow(length)
        guard length >= 0, !overflow else {
            throw AttentionError.invalidArgument(
                argument: "sequenceLengths", reason: "entry \(index) is \(length); lengths are non-negative and add up to T")
        }
        total = sum
    }
    guard total == packedQuery.shape[0] else {
        throw AttentionError.invalidArgument(
            argument: "sequenceLengths",
            reason: "add up to \(total), but the packed query has T = \(packedQuery.shape[0]) rows")
    }
    // The whole packed problem validates as one sequence of T tokens: shapes, heads, scale, threads.
    let whole = try AttentionProblem(
        query: packedQuery, key: key, value: value, mask: .unmasked, scale: scale, dropout: nil,
        maskedRows: .zero, threads: threads, layout: .sequence)
    guard key.shape[0] == total else {
        throw AttentionError.shapeMismatch(
            argument: "key", expected: "[\(total), Hkv, Dqk]: the packed query's T rows", actual: key.shape)
    }
    let heads = ProjectedHeads(query: whole.call.query, key: whole.call.key, value: whole.call.value)
    let core = MultiHeadAttentionCore(
        heads: whole.headsQ, keyValueHeads: whole.headsKV, queryKeySize: whole.dimQK, valueSize: whole.dimV)
    let output = try core.attend(
        heads, sequenceLengths: sequenceLengths, causal: causal, scale: whole.call.scale, threads: whole.call.threads,
        outputDType: whole.call.outputDType, context: whole.context)
    return try output.reshaped(whole.outputShape)
}
