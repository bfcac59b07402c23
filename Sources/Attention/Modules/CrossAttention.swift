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
public struct CrossAttention: ParameterizedModule, Equatable {
    /// `W_query`, `(dIn, dOutKQ)`: the queries are `x1 · queryWeight`.
    ///
    /// ```swift
    /// attention.queryWeight.shape   // [3, 2]
    /// ```
    public var queryWeight: Tensor

    /// `W_key`, `(dIn, dOutKQ)`: the keys are `x2 · keyWeight`.
    ///
    /// ```swift
    /// attention.keyWeight.shape   // [3, 2]
    /// ```
    public var keyWeight: Tensor

    /// `W_value`, `(dIn, dOutV)`: the values are `x2 · valueWeight`.
    ///
    /// ```swift
    /// attention.valueWeight.shape   // [3, 4]
    /// ```
    public var valueWeight: Tensor

    /// The input feature size, `d_in` (the weights' first dimension).
    ///
    /// ```swift
    /// attention.dIn   // 3
    /// ```
    public var dIn: Int { queryWeight.shape.first ?? 0 }

    /// The query and key size, `d_out_kq`; the scores are scaled by `1/√dOutKQ`.
    ///
    /// ```swift
    /// attention.dOutKQ   // 2
    /// ```
    public var dOutKQ: Int { queryWeight.rank == 2 ? queryWeight.shape[1] : 0 }

    /// The value (and output) size, `d_out_v`.
    ///
    /// ```swift
    /// attention.dOutV   // 4
    /// ```
    public var dOutV: Int { valueWeight.rank == 2 ? valueWeight.shape[1] : 0 }

    /// Creates the module with the tutorial's initialisation, `torch.rand`: every weight from
    /// `U[0, 1)`, drawn in the order `W_query`, `W_key`, `W_value`.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 123)
    /// let attention = try CrossAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"dIn"`, `"dOutKQ"`, `"dOutV"`) for a size
    ///   below 1.
    public init(dIn: Int, dOutKQ: Int, dOutV: Int, using generator: inout some RandomNumberGenerator) throws {
        (queryWeight, keyWeight, valueWeight) = try randomTutorialWeights(
            dIn: dIn, dOutKQ: dOutKQ, dOutV: dOutV, using: &generator)
    }

    /// Creates the module from its weights.
    ///
    /// ```swift
    /// let attention = try CrossAttention(
    ///     queryWeight: Tensor(ones: [3, 2]), keyWeight: Tensor(ones: [3, 2]), valueWeight: Tensor(ones: [3, 4]))
    /// ```
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"W_query"`, `"W_key"`, `"W_value"`) unless the
    ///   weights are `(dIn, dOutKQ)`, `(dIn, dOutKQ)` and `(dIn, dOutV)`, every size at least 1.
    public init(queryWeight: Tensor, keyWeight: Tensor, valueWeight: Tensor) throws {
        self.queryWeight = queryWeight
        self.keyWeight = keyWeight
        self.valueWeight = valueWeight
        _ = try validateTutorialWeights(headWeights(prefix: ""))
    }

    /// `W_query`, `W_key`, `W_value`: the tutorial's `nn.Parameter` names, in their order.
    ///
    /// ```swift
    /// attention.parameterPaths.map(\.name)   // ["W_query", "W_key", "W_value"]
    /// ```
    public var parameterPaths: [ParameterPath<CrossAttention>] {
        [("W_query", \.queryWeight), ("W_key", \.keyWeight), ("W_value", \.valueWeight)]
    }

    /// The weights, named with `prefix` in errors.
    func headWeights(prefix: String) -> TutorialHeadWeights {
        TutorialHeadWeights(query: queryWeight, key: keyWeight, value: valueWeight, prefix: prefix)
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
