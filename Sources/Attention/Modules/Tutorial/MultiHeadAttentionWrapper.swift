/// The tutorial's multi-head attention ("Multi-Head Attention"): several independent
/// ``SelfAttention`` heads on the same input, their outputs concatenated along the last axis.
///
/// ```
/// out = concat([head_0(x), head_1(x), …], axis: -1)        → (L, heads · dOutV)
/// ```
///
/// Every head keeps its own `W_query`, `W_key`, `W_value`, but the computation is not a loop over
/// heads: all `3 · heads` weights are concatenated column-wise into one `(dIn, heads·(2·dOutKQ + dOutV))`
/// matrix, applied with one matrix multiply, and one attention call over every head reads the
/// result in place. Its output, position-major `(L, heads, dOutV)`, is already the concatenation.
///
/// ```swift
/// var rng = SeededGenerator(seed: 123)
/// let attention = try MultiHeadAttentionWrapper(dIn: 3, dOutKQ: 2, dOutV: 1, heads: 4, using: &rng)
/// let x = try Tensor(randomNormal: [6, 3], using: &rng)     // (L, dIn)
/// let context = try attention(x)                            // (6, 4): 4 heads of 1
/// ```
///
/// Mapping from the tutorial's names:
///
/// | tutorial (PyTorch)                                  | Swift                                              |
/// |-----------------------------------------------------|----------------------------------------------------|
/// | `MultiHeadAttentionWrapper(d_in, d_out_kq, d_out_v, num_heads)` | `MultiHeadAttentionWrapper(dIn:dOutKQ:dOutV:heads:using:)` |
/// | `self.heads` (`nn.ModuleList` of `SelfAttention`)   | `heads` (`[SelfAttention]`)                        |
/// | `heads.<i>.W_query`, `.W_key`, `.W_value`           | the same parameter names                           |
/// | `forward(x)`                                        | `callAsFunction(_:)`                               |
///
/// Unbatched `(L, dIn)` as in the tutorial, or batched `(B, L, dIn)`.
public struct MultiHeadAttentionWrapper: ParameterizedModule, Equatable {
    /// The heads, each a ``SelfAttention`` with the same sizes (`self.heads` in the tutorial).
    public var heads: [SelfAttention]

    /// Creates `heads` heads with the tutorial's initialisation, `torch.rand` (`U[0, 1)`), head by
    /// head, each drawing `W_query`, `W_key`, `W_value` in that order (the order of the
    /// `nn.ModuleList`'s construction).
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"heads"`, `"dIn"`, `"dOutKQ"`, `"dOutV"`) for
    ///   a count or size below 1.
    public init(
        dIn: Int, dOutKQ: Int, dOutV: Int, heads: Int, using generator: inout some RandomNumberGenerator
    ) throws {
        guard heads >= 1 else {
            throw AttentionError.invalidArgument(argument: "heads", reason: "must be at least 1, got \(heads)")
        }
        var list: [SelfAttention] = []
        for _ in 0 ..< heads {
            list.append(try SelfAttention(dIn: dIn, dOutKQ: dOutKQ, dOutV: dOutV, using: &generator))
        }
        self.heads = list
    }

    /// Creates the module from its heads.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"heads"`) for an empty list;
    ///   `.shapeMismatch` (`"heads.1.W_value"` …) when the heads' sizes differ.
    public init(heads: [SelfAttention]) throws {
        self.heads = heads
        try validateHeads()
    }

    /// Every head's weights.
    public var matrixWeightNames: Set<String> {
        heads.indices.reduce(into: Set<String>()) { names, index in
            names.formUnion(matrixWeightNames(of: \.heads[index], prefixedBy: "heads.\(index)"))
        }
    }

    /// `heads.<i>.W_query`, `heads.<i>.W_key`, `heads.<i>.W_value` for each head in order, as the
    /// tutorial module's `state_dict`.
    public var parameterPaths: [ParameterPath<MultiHeadAttentionWrapper>] {
        heads.indices.flatMap { parameterPaths(of: \.heads[$0], prefixedBy: "heads.\($0)") }
    }

    /// The heads' outputs concatenated along the last axis: `(L, heads · dOutV)` or
    /// `(B, L, heads · dOutV)`, head 0 first.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"x"`) for a rank other than 2 or 3 or a last
    ///   dimension other than `dIn`, (`"heads.<i>.W_…"`) for heads whose sizes differ;
    ///   `.invalidArgument` (`"heads"`, `"x"`) for no heads or an empty sequence; the kernels'
    ///   errors.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(TutorialAttentionInputs(x: x)).output
    }

    /// The concatenated context vectors and every head's weights, `(H, L, L)` or `(B, H, L, L)`
    /// (`(L, L)` or `(B, L, L)` for one head), each row summing to 1.
    ///
    /// - Throws: as ``callAsFunction(_:)-(Tensor)``.
    public func callWithWeights(_ x: Tensor) throws -> AttentionResult {
        try callAsFunction(TutorialAttentionInputs(x: x, returningWeights: true))
    }

    private var headWeights: [TutorialHeadWeights] {
        heads.enumerated().map { $1.headWeights(prefix: "heads.\($0).") }
    }

    private func validateHeads() throws {
        _ = try validateTutorialHeads(headWeights)
    }
}

extension MultiHeadAttentionWrapper: Layer {
    /// A sequence, an optional second one, and whether to return the weights.
    public typealias Input = TutorialAttentionInputs
    /// The output and, when asked for, the weights.
    public typealias Output = AttentionResult

    /// Runs every head on `inputs.x` (self-attention: `inputs.context` must be `nil`).
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"x2"`) for a context; the errors of
    ///   ``callAsFunction(_:)``.
    public func callAsFunction(_ inputs: TutorialAttentionInputs) throws -> AttentionResult {
        try forward(inputs).result
    }

    /// The call; with `recording`, its pullbacks too.
    func forward(
        _ inputs: TutorialAttentionInputs, recording: Bool = false
    ) throws -> (result: AttentionResult, backward: TutorialAttentionBackward?) {
        guard inputs.context == nil else {
            throw AttentionError.invalidArgument(
                argument: "x2", reason: "self-attention attends within x; it takes no second sequence")
        }
        return try tutorialAttention(
            inputs.x, heads: headWeights, returningWeights: inputs.returningWeights, recording: recording)
    }
}
