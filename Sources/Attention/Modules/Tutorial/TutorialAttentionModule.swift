/// A single-head attention module of the attention tutorial (``SelfAttention``,
/// ``CausalSelfAttention``, ``CrossAttention``): three bias-free weights `W_query`, `W_key`
/// `(dIn, dOutKQ)` and `W_value` `(dIn, dOutV)`, applied as `x · W`.
///
/// A conforming type stores the three weights and checks them in
/// ``init(queryWeight:keyWeight:valueWeight:)``; the sizes, the tutorial's random initialisation
/// and the parameter names come from the protocol extension.
///
/// ```swift
/// var rng = SeededGenerator(seed: 123)
/// let attention = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
/// attention.dOutKQ                           // 2
/// attention.parameterPaths.map(\.name)       // ["W_query", "W_key", "W_value"]
/// ```
public protocol TutorialAttentionModule: ParameterizedModule {
    /// `W_query`, `(dIn, dOutKQ)`: the queries are the query sequence times `queryWeight`.
    ///
    /// ```swift
    /// attention.queryWeight.shape   // [3, 2]
    /// ```
    var queryWeight: Tensor { get set }

    /// `W_key`, `(dIn, dOutKQ)`: the keys are the key sequence times `keyWeight`.
    ///
    /// ```swift
    /// attention.keyWeight.shape   // [3, 2]
    /// ```
    var keyWeight: Tensor { get set }

    /// `W_value`, `(dIn, dOutV)`: the values are the key sequence times `valueWeight`.
    ///
    /// ```swift
    /// attention.valueWeight.shape   // [3, 4]
    /// ```
    var valueWeight: Tensor { get set }

    /// Creates the module from its weights.
    ///
    /// ```swift
    /// let attention = try SelfAttention(
    ///     queryWeight: Tensor(ones: [3, 2]), keyWeight: Tensor(ones: [3, 2]), valueWeight: Tensor(ones: [3, 4]))
    /// ```
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"W_query"`, `"W_key"`, `"W_value"`) unless the
    ///   weights are `(dIn, dOutKQ)`, `(dIn, dOutKQ)` and `(dIn, dOutV)`, every size at least 1.
    init(queryWeight: Tensor, keyWeight: Tensor, valueWeight: Tensor) throws
}

extension TutorialAttentionModule {
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
    /// let attention = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"dIn"`, `"dOutKQ"`, `"dOutV"`) for a size
    ///   below 1.
    public init(dIn: Int, dOutKQ: Int, dOutV: Int, using generator: inout some RandomNumberGenerator) throws {
        for (name, size) in [("dIn", dIn), ("dOutKQ", dOutKQ), ("dOutV", dOutV)] where size < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        let queryWeight = try Tensor(randomUniform: [dIn, dOutKQ], in: 0 ..< 1, using: &generator)
        let keyWeight = try Tensor(randomUniform: [dIn, dOutKQ], in: 0 ..< 1, using: &generator)
        let valueWeight = try Tensor(randomUniform: [dIn, dOutV], in: 0 ..< 1, using: &generator)
        try self.init(queryWeight: queryWeight, keyWeight: keyWeight, valueWeight: valueWeight)
    }

    /// `W_query`, `W_key`, `W_value`: the tutorial's `nn.Parameter` names, in their order.
    ///
    /// ```swift
    /// attention.parameterPaths.map(\.name)   // ["W_query", "W_key", "W_value"]
    /// ```
    public var parameterPaths: [ParameterPath<Self>] {
        [("W_query", \.queryWeight), ("W_key", \.keyWeight), ("W_value", \.valueWeight)]
    }

    /// The weights, named with `prefix` in errors.
    func headWeights(prefix: String) -> TutorialHeadWeights {
        TutorialHeadWeights(query: queryWeight, key: keyWeight, value: valueWeight, prefix: prefix)
    }
}
