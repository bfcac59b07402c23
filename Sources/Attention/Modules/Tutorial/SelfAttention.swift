/// The tutorial's single-head self-attention ("Self Attention" in the attention tutorial):
/// `softmax((x W_query)(x W_key)ᵀ / √dOutKQ) (x W_value)`.
///
/// The weights are `(dIn, dOut)` matrices applied as `x · W` (not `Linear`'s `x · Wᵀ`), with no
/// biases. The three projections run as one matrix multiply over the weights concatenated
/// column-wise, and the attention reads the queries, keys and values in place from its result.
///
/// ```swift
/// var rng = SeededGenerator(seed: 123)
/// let attention = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
/// let x = try Tensor(randomNormal: [6, 3], using: &rng)     // (L, dIn)
/// let context = try attention(x)                            // (6, 4)
/// ```
///
/// Mapping from the tutorial's names:
///
/// | tutorial (PyTorch)                     | Swift                                    |
/// |----------------------------------------|------------------------------------------|
/// | `SelfAttention(d_in, d_out_kq, d_out_v)` | `SelfAttention(dIn:dOutKQ:dOutV:using:)` |
/// | `W_query`, `W_key`, `W_value`          | `queryWeight`, `keyWeight`, `valueWeight` (parameter names unchanged) |
/// | `self.d_out_kq`                        | `dOutKQ`                                 |
/// | `torch.rand` initialisation            | `U[0, 1)` from `generator`               |
/// | `forward(x)`                           | `callAsFunction(_:)`                     |
/// | `attn_weights`                         | `attentionWeights(_:)`                   |
///
/// The tutorial works on one unbatched sequence `(L, dIn)` (`keys.T` transposes a matrix); batched
/// inputs `(B, L, dIn)` are accepted as well, each sequence attending within itself.
public struct SelfAttention: TutorialAttentionModule, Equatable {
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

    /// The context vectors: `softmax((x W_query)(x W_key)ᵀ / √dOutKQ) (x W_value)`.
    ///
    /// ```swift
    /// let context = try attention(x)        // x: (L, dIn) → (L, dOutV); (B, L, dIn) → (B, L, dOutV)
    /// ```
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"x"`) for a rank other than 2 or 3 or a last
    ///   dimension other than `dIn`, (`"W_query"` …) for weights given inconsistent shapes;
    ///   `.invalidArgument` (`"x"`) for an empty sequence; the kernels' errors.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try tutorialAttention(x, heads: [headWeights(prefix: "")])
    }

    /// The attention weights `softmax((x W_query)(x W_key)ᵀ / √dOutKQ)`, `(L, L)` or `(B, L, L)`:
    /// the tutorial's `attn_weights`, each row summing to 1.
    ///
    /// ```swift
    /// let weights = try attention.attentionWeights(x)   // (6, 6)
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func attentionWeights(_ x: Tensor) throws -> Tensor {
        try tutorialAttention(x, heads: [headWeights(prefix: "")], returningWeights: true)
    }
}
