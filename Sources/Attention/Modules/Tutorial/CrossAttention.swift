/// The tutorial's cross-attention ("Cross-Attention"): queries from one sequence, keys and
/// values from another, `softmax((x₁ W_query)(x₂ W_key)ᵀ / √dOutKQ) (x₂ W_value)`. In a
/// transformer decoder, `x₁` is the decoder's sequence and `x₂` the encoder's output.
///
/// The weights are `(dIn, dOut)` matrices applied as `x · W`, without biases. The key and value
/// projections of `x₂` run as one matrix multiply, and the attention reads the heads in place.
///
/// ```swift
/// var rng = SeededGenerator(seed: 123)
/// let attention = try CrossAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
/// let x1 = try Tensor(randomNormal: [6, 3], using: &rng)    // (L, dIn): queries
/// let x2 = try Tensor(randomNormal: [8, 3], using: &rng)    // (S, dIn): keys and values
/// let context = try attention(x1, x2)                       // (6, 4)
/// ```
///
/// Mapping from the tutorial's names:
///
/// | tutorial (PyTorch)                     | Swift                                    |
/// |----------------------------------------|------------------------------------------|
/// | `CrossAttention(d_in, d_out_kq, d_out_v)` | `CrossAttention(dIn:dOutKQ:dOutV:using:)` |
/// | `W_query`, `W_key`, `W_value`          | `queryWeight`, `keyWeight`, `valueWeight` (parameter names unchanged) |
/// | `self.d_out_kq`                        | `dOutKQ`                                 |
/// | `torch.rand` initialisation            | `U[0, 1)` from `generator`               |
/// | `forward(x_1, x_2)`                    | `callAsFunction(_:_:)`                   |
/// | `attn_weights`                         | `attentionWeights(_:_:)`                 |
///
/// Unbatched `(L, dIn)` and `(S, dIn)` as in the tutorial, or batched `(B, L, dIn)` and
/// `(B, S, dIn)`.
public struct CrossAttention: TutorialAttentionModule, Equatable {
    /// `W_query`, `(dIn, dOutKQ)`: the queries are `x1 · queryWeight`.
    public var queryWeight: Tensor

    /// `W_key`, `(dIn, dOutKQ)`: the keys are `x2 · keyWeight`.
    public var keyWeight: Tensor

    /// `W_value`, `(dIn, dOutV)`: the values are `x2 · valueWeight`.
    public var valueWeight: Tensor

    /// Creates the module from its weights, checking their shapes as
    /// ``TutorialAttentionModule/init(queryWeight:keyWeight:valueWeight:)`` describes.
    public init(queryWeight: Tensor, keyWeight: Tensor, valueWeight: Tensor) throws {
        self.queryWeight = queryWeight
        self.keyWeight = keyWeight
        self.valueWeight = valueWeight
        _ = try validateTutorialWeights(headWeights(prefix: ""))
    }

    /// The context vectors of `x1` over `x2`:
    /// `softmax((x1 W_query)(x2 W_key)ᵀ / √dOutKQ) (x2 W_value)`.
    ///
    /// ```swift
    /// let context = try attention(x1, x2)   // x1: (L, dIn), x2: (S, dIn) → (L, dOutV)
    /// ```
    ///
    /// - Parameters:
    ///   - x1: the queries' sequence, `(L, dIn)` or `(B, L, dIn)` (the tutorial's `x_1`).
    ///   - x2: the keys' and values' sequence, `(S, dIn)` or `(B, S, dIn)` (`x_2`), the rank and
    ///     batch of `x1`.
    /// - Returns: `(L, dOutV)` or `(B, L, dOutV)`.
    /// - Throws: `AttentionError.shapeMismatch` (`"x1"`, `"x2"`) for a rank other than 2 or 3, a
    ///   last dimension other than `dIn`, or ranks or batches that differ; (`"W_query"` …) for
    ///   weights given inconsistent shapes; `.invalidArgument` for an empty sequence; the kernels'
    ///   errors.
    public func callAsFunction(_ x1: Tensor, _ x2: Tensor) throws -> Tensor {
        try tutorialAttention(x1, context: x2, heads: [headWeights(prefix: "")], inputNames: ("x1", "x2"))
    }

    /// The attention weights `softmax((x1 W_query)(x2 W_key)ᵀ / √dOutKQ)`, `(L, S)` or
    /// `(B, L, S)`, each row summing to 1.
    ///
    /// ```swift
    /// let weights = try attention.attentionWeights(x1, x2)   // (6, 8)
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:_:)``.
    public func attentionWeights(_ x1: Tensor, _ x2: Tensor) throws -> Tensor {
        try tutorialAttention(
            x1, context: x2, heads: [headWeights(prefix: "")], returningWeights: true, inputNames: ("x1", "x2"))
    }
}
