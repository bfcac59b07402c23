/// The tutorial's causal self-attention ("Causal Self-Attention"): like ``SelfAttention``, but
/// query i attends only to keys `j <= i`, so no position sees the ones after it.
///
/// The future is masked **before** the softmax (`scores[i, j] = -∞` for `j > i`, PyTorch's
/// `masked_fill` with `triu(ones(T, T), diagonal=1)`), top-left aligned. The tutorial also shows
/// the other order, softmax, then zeroing above the diagonal, then renormalising each row; the two
/// are equal in exact arithmetic (the softmax's normaliser cancels), but masking first never
/// computes the future terms, so it cannot underflow to `0/0` when future scores dominate, and it
/// saves a reduction and a division. The kernel never computes the masked scores at all.
///
/// ```swift
/// var rng = SeededGenerator(seed: 123)
/// let attention = try CausalSelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
/// let x = try Tensor(randomNormal: [6, 3], using: &rng)     // (L, dIn)
/// let context = try attention(x)                            // (6, 4); row i uses x[0...i] only
/// let weights = try attention.attentionWeights(x)           // (6, 6), zero above the diagonal
/// ```
///
/// Mapping from the tutorial's names:
///
/// | tutorial (PyTorch)                     | Swift                                    |
/// |----------------------------------------|------------------------------------------|
/// | `CausalSelfAttention(d_in, d_out_kq, d_out_v)` | `CausalSelfAttention(dIn:dOutKQ:dOutV:using:)` |
/// | `W_query`, `W_key`, `W_value`          | `queryWeight`, `keyWeight`, `valueWeight` (parameter names unchanged) |
/// | `self.d_out_kq`                        | `dOutKQ`                                 |
/// | `torch.rand` initialisation            | `U[0, 1)` from `generator`               |
/// | `forward(x)`                           | `callAsFunction(_:)`                     |
/// | `attn_weights` (masked)                | `attentionWeights(_:)`                   |
///
/// Unbatched `(L, dIn)` as in the tutorial, or batched `(B, L, dIn)`.
public struct CausalSelfAttention: TutorialAttentionModule, Equatable {
    /// `W_query`, `(dIn, dOutKQ)`: the queries are `x · queryWeight`.
    public var queryWeight: Tensor

    /// `W_key`, `(dIn, dOutKQ)`: the keys are `x · keyWeight`.
    public var keyWeight: Tensor

    /// `W_value`, `(dIn, dOutV)`: the values are `x · valueWeight`.
    public var valueWeight: Tensor

    /// Creates the module from its weights, checking their shapes as
    /// ``TutorialAttentionModule/init(queryWeight:keyWeight:valueWeight:)`` describes.
    public init(queryWeight: Tensor, keyWeight: Tensor, valueWeight: Tensor) throws {
        self.queryWeight = queryWeight
        self.keyWeight = keyWeight
        self.valueWeight = valueWeight
        _ = try validateTutorialWeights(headWeights(prefix: ""))
    }

    /// The context vectors: `softmax(mask((x W_query)(x W_key)ᵀ) / √dOutKQ) (x W_value)`, with
    /// the scores of keys after the query masked.
    ///
    /// ```swift
    /// let context = try attention(x)        // x: (L, dIn) → (L, dOutV); (B, L, dIn) → (B, L, dOutV)
    /// ```
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"x"`) for a rank other than 2 or 3 or a last
    ///   dimension other than `dIn`, (`"W_query"` …) for weights given inconsistent shapes;
    ///   `.invalidArgument` (`"x"`) for an empty sequence; the kernels' errors.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try tutorialAttention(x, heads: [headWeights(prefix: "")], causal: true)
    }

    /// The masked attention weights, `(L, L)` or `(B, L, L)`: zero above the diagonal, each row
    /// summing to 1.
    ///
    /// ```swift
    /// let weights = try attention.attentionWeights(x)   // (6, 6)
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func attentionWeights(_ x: Tensor) throws -> Tensor {
        try tutorialAttention(x, heads: [headWeights(prefix: "")], causal: true, returningWeights: true)
    }
}
