/// A module with one main call from an input to an output: `try module(input)`.
///
/// Every module of the library conforms, so generic code can run any of them the same way:
/// layers map a `Tensor` to a `Tensor`; the attention modules take their `Inputs` (query, key,
/// value, masks and call options) and give an ``AttentionResult``, whose weights are filled when
/// the inputs ask for them and the module can compute them.
///
/// ```swift
/// func runAll<L: Layer>(_ layers: [L], on x: L.Input) throws -> [L.Output] {
///     try layers.map { try $0(x) }
/// }
/// let attention = try TorchMultiheadAttention(embedDim: 16, heads: 4, using: &rng)
/// let result = try attention(.init(query: x, key: x, value: x, needWeights: true))
/// // result.output: (N, L, 16); result.weights: (N, L, L), averaged over heads
/// ```
public protocol Layer: ParameterizedModule {
    /// What one call takes.
    associatedtype Input
    /// What one call gives.
    associatedtype Output

    /// Runs the module on `input`.
    ///
    /// - Throws: `AttentionError` naming the offending argument and shapes.
    func callAsFunction(_ input: Input) throws -> Output
}

/// What an attention module gives: its output and, when asked for, the attention weights.
///
/// The weights are the softmax probabilities after masking and dropout, `(B, H, Lq, Lk)` with the
/// query's batch dimensions (PyTorch's module averages them over the heads by default, giving
/// `(B, Lq, Lk)`). `weights` is `nil` when they were not asked for.
///
/// ```swift
/// let result = try attention.callWithWeights(query: x, mask: mask)
/// let probabilities = try #require(result.weights)   // (B, H, L, L); each row sums to 1
/// ```
public struct AttentionResult: Sendable, Equatable {
    /// The module's output.
    public var output: Tensor
    /// The attention weights, or `nil` when they were not asked for.
    public var weights: Tensor?

    /// A result from its output and optional weights.
    public init(output: Tensor, weights: Tensor? = nil) {
        self.output = output
        self.weights = weights
    }
}

/// Whether `query`, `key` and `value` are one tensor (the same storage and shape): the test every
/// attention module uses to run its packed self-attention projection, one matrix multiply for all
/// three.
func isSelfAttention(query: Tensor, key: Tensor, value: Tensor) -> Bool {
    isSameTensor(query, key) && isSameTensor(key, value)
}

/// Whether two tensors are one (the same storage and shape), so a projection of one serves both.
func isSameTensor(_ a: Tensor, _ b: Tensor) -> Bool {
    a.storage === b.storage && a.shape == b.shape
}

extension Dropout {
    /// The dropout a module applies in one call, the one decision every module makes the same way:
    /// `nil` when the call does not train or the probability is 0; otherwise dropout with `seed`,
    /// which must then be given.
    ///
    /// - Parameters:
    ///   - probability: the module's rate, checked to be in `[0, 1)`.
    ///   - probabilityArgument: the name of the rate in errors (`"dropout"`, `"dropoutRate"`, ...).
    ///   - training: whether the call trains (not inference, not deterministic).
    ///   - seed: the call's seed; `nil` when the caller gave none.
    ///   - seedArgument: the name of the seed in errors.
    static func forCall(
        probability: Float, probabilityArgument: String, training: Bool, seed: UInt64?,
        seedArgument: String = "dropoutSeed"
    ) throws(AttentionError) -> Dropout? {
        guard probability >= 0, probability < 1 else {
            throw .invalidArgument(argument: probabilityArgument, reason: "must be in [0, 1), got \(probability)")
        }
        if !training || probability == 0 { return nil }
        guard let seed else {
            throw .invalidArgument(
                argument: seedArgument,
                reason: "a seed is required while dropout is active (\(probabilityArgument) \(probability), "
                    + "training); pass \(seedArgument):, or turn training off")
        }
        return Dropout(probability: probability, seed: seed)
    }
}
