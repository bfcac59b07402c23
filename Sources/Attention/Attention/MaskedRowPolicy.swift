/// What a query row produces when every one of its scores is masked (by causality, the window,
/// the key lengths, the boolean mask or a `-infinity` bias, in any combination).
///
/// Libraries disagree here, so the choice is explicit:
///
/// ```swift
/// // Match PyTorch's SDPA (>= 2.5) and FlashAttention: zeros.
/// let a = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, maskedRows: .zero)
/// // Match Equinox and Flax, which mask with the most negative finite float: the mean of V.
/// let b = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, maskedRows: .meanOfValues)
/// ```
///
/// In every case the row's log-sum-exp is `-infinity`.
public enum MaskedRowPolicy: Sendable, Equatable, Hashable, CaseIterable {
    /// The row is zeros (PyTorch SDPA >= 2.5, FlashAttention).
    case zero

    /// The row is NaN: a plain softmax over `-infinity` scores (PyTorch's `need_weights` path).
    case nan

    /// The row is the mean of the values over all Lk keys, with dropout applied to those uniform
    /// weights (Equinox, Flax).
    case meanOfValues
}
