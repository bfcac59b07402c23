/// A single-head attention module of the attention tutorial: three bias-free weights `W_query`,
/// `W_key` `(dIn, dOutKQ)` and `W_value` `(dIn, dOutV)`, applied as `x · W` (not `Linear`'s
/// `x · Wᵀ`), and `softmax(Q Kᵀ / √dOutKQ) V`. One implementation serves the tutorial's three
/// modules, which differ only in their `Kind`: ``SelfAttention``, ``CausalSelfAttention`` and
/// ``CrossAttention``.
///
/// The projections run as one matrix multiply over the weights concatenated column-wise, and
/// the attention reads the queries, keys and values in place from its result.
///
/// ```swift
/// var rng = SeededGenerator(seed: 123)
/// let attention = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
/// let x = try Tensor(randomNormal: [6, 3], using: &rng)     // (L, dIn)
/// let context = try attention(x)                            // (6, 4)
/// let weights = try attention.callWithWeights(x).weights    // (6, 6), rows summing to 1
/// attention.parameterPaths.map(\.name)                      // ["W_query", "W_key", "W_value"]
/// ```
///
/// Mapping from the tutorial's names:
///
/// | tutorial (PyTorch)                        | Swift                                       |
/// |-------------------------------------------|---------------------------------------------|
/// | `SelfAttention(d_in, d_out_kq, d_out_v)`  | `SelfAttention(dIn:dOutKQ:dOutV:using:)`    |
/// | `W_query`, `W_key`, `W_value`             | `queryWeight`, `keyWeight`, `valueWeight` (parameter names unchanged) |
/// | `self.d_out_kq`                           | `dOutKQ`                                    |
/// | `torch.rand` initialisation               | `U[0, 1)` from `generator`                  |
/// | `forward(x)`, `forward(x_1, x_2)`         | `callAsFunction(_:)`, `callAsFunction(_:_:)` |
/// | `attn_weights`                            | `callWithWeights(_:)`, `callWithWeights(_:_:)` |
///
/// The tutorial works on one unbatched sequence `(L, dIn)`; batched inputs `(B, L, dIn)` are
/// accepted as well, each sequence attending within itself.
public struct TutorialAttention<Kind: TutorialAttentionKind>: ParameterizedModule, Equatable {
    /// `W_query`, `(dIn, dOutKQ)`: the queries are the query sequence times `queryWeight`.
    public var queryWeight: Tensor

    /// `W_key`, `(dIn, dOutKQ)`: the keys are the key sequence times `keyWeight`.
    public var keyWeight: Tensor

    /// `W_value`, `(dIn, dOutV)`: the values are the key sequence times `valueWeight`.
    public var valueWeight: Tensor

    /// Creates the module from its weights.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"W_query"`, `"W_key"`, `"W_value"`) unless
    ///   `queryWeight` and `keyWeight` are `(dIn, dOutKQ)` and `valueWeight` is `(dIn, dOutV)`,
    ///   every size at least 1.
    public init(queryWeight: Tensor, keyWeight: Tensor, valueWeight: Tensor) throws {
        self.queryWeight = queryWeight
        self.keyWeight = keyWeight
        self.valueWeight = valueWeight
        _ = try validateTutorialWeights(headWeights(prefix: ""))
    }

    /// Creates the module with the tutorial's initialisation, `torch.rand`: every weight from
    /// `U[0, 1)`, drawn in the order `W_query`, `W_key`, `W_value`.
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

    /// The input size, `d_in`.
    public var dIn: Int { queryWeight.shape.first ?? 0 }

    /// The query and key size, `d_out_kq`; the scores are scaled by `1/√dOutKQ`.
    public var dOutKQ: Int { queryWeight.rank == 2 ? queryWeight.shape[1] : 0 }

    /// The value (and output) size, `d_out_v`.
    public var dOutV: Int { valueWeight.rank == 2 ? valueWeight.shape[1] : 0 }

    /// `W_query`, `W_key` and `W_value`: all three may be half precision.
    public var matrixWeightNames: Set<String> { ["W_query", "W_key", "W_value"] }

    /// `W_query`, `W_key`, `W_value`: the tutorial's `nn.Parameter` names, in their order.
    public var parameterPaths: [ParameterPath<Self>] {
        [ParameterPath("W_query", \.queryWeight), ParameterPath("W_key", \.keyWeight), ParameterPath("W_value", \.valueWeight)]
    }

    /// The weights, named with `prefix` in errors.
    func headWeights(prefix: String) -> TutorialHeadWeights {
        TutorialHeadWeights(query: queryWeight, key: keyWeight, value: valueWeight, prefix: prefix)
    }
}

/// What distinguishes the tutorial's attention modules: which keys a query sees, and whether the
/// keys and values come from a second sequence.
public protocol TutorialAttentionKind: Sendable {
    /// Query i sees only keys `j <= i`.
    static var isCausal: Bool { get }
    /// The keys and values come from a second sequence (`x_2`).
    static var isCrossAttention: Bool { get }
}

/// The kind of ``SelfAttention``: every position attends to every position of its sequence.
public enum SelfAttentionKind: TutorialAttentionKind {
    public static let isCausal = false
    public static let isCrossAttention = false
}

/// The kind of ``CausalSelfAttention``: position i attends to positions `0...i` of its sequence.
public enum CausalSelfAttentionKind: TutorialAttentionKind {
    public static let isCausal = true
    public static let isCrossAttention = false
}

/// The kind of ``CrossAttention``: queries from `x_1`, keys and values from `x_2`.
public enum CrossAttentionKind: TutorialAttentionKind {
    public static let isCausal = false
    public static let isCrossAttention = true
}

/// The tutorial's single-head self-attention ("Self Attention"):
/// `softmax((x W_query)(x W_key)ᵀ / √dOutKQ) (x W_value)`.
public typealias SelfAttention = TutorialAttention<SelfAttentionKind>

/// The tutorial's causal self-attention ("Causal Self-Attention"): like ``SelfAttention``, but
/// query i attends only to keys `j <= i`, so no position sees the ones after it.
///
/// The future is masked **before** the softmax (`scores[i, j] = -∞` for `j > i`, PyTorch's
/// `masked_fill` with `triu(ones(T, T), diagonal=1)`), top-left aligned. The tutorial also shows
/// the other order, softmax, then zeroing above the diagonal, then renormalising each row; the two
/// are equal in exact arithmetic (the softmax's normaliser cancels), but masking first never
/// computes the future terms, so it cannot underflow to `0/0` when future scores dominate. The
/// kernel never computes the masked scores at all.
public typealias CausalSelfAttention = TutorialAttention<CausalSelfAttentionKind>

/// The tutorial's cross-attention ("Cross-Attention"): queries from one sequence, keys and values
/// from another, `softmax((x₁ W_query)(x₂ W_key)ᵀ / √dOutKQ) (x₂ W_value)`. In a transformer
/// decoder, `x₁` is the decoder's sequence and `x₂` the encoder's output. The key and value
/// projections of `x₂` run as one matrix multiply.
public typealias CrossAttention = TutorialAttention<CrossAttentionKind>
