/// Multi-head attention with Equinox's semantics (`equinox.nn.MultiheadAttention`): separate
/// query, key, value and output projections, per-head sizes `qkSize` and `voSize`, optional biases
/// (all off by default), a boolean mask in which `true` attends, dropout on the attention weights
/// and a hook on the projected heads.
///
/// ```
/// qh = (query W_qᵀ + b_q) reshaped to (L, H, qkSize)        head h: rows h·qkSize ..< (h+1)·qkSize
/// kh = (key   W_kᵀ + b_k) reshaped to (S, H, qkSize)
/// vh = (value W_vᵀ + b_v) reshaped to (S, H, voSize)
/// (rotary, then processHeads, on qh / kh / vh)
/// attn[h] = softmax(qh[h] khᵀ[h] / √qkSize, masked) vh[h]  (dropout on the weights)
/// out = attn reshaped to (L, H·voSize), then W_oᵀ + b_o      → (L, outputSize)
/// ```
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let attention = try MultiheadAttention(heads: 4, querySize: 64, using: &rng)
/// let x = try Tensor(randomNormal: [10, 64], using: &rng)        // (L, querySize)
/// let y = try attention(x)                                         // self-attention, (10, 64)
/// let causal = try BooleanMask(shape: [10, 10]) { $0[1] <= $0[0] }
/// let z = try attention(query: x, key: x, value: x, mask: causal)
/// ```
///
/// The projected heads are never split, transposed or copied: the attention kernel reads them in
/// place, position-major `(B, L, H, d)`, from the projections' output. When the query, key and
/// value are the same tensor (``callAsFunction(_:mask:inference:dropoutSeed:rotary:processHeads:)``,
/// or the same `Tensor` passed three times), the three input projections run as **one** matrix
/// multiply over the concatenated weight `(2·H·qkSize + H·voSize, querySize)`. That concatenation
/// is built on the first self-attention call and reused while the weights are unchanged (any
/// change to them, or a load, rebuilds it on the next call).
///
/// Parameters, under Equinox's names, each an Equinox `Linear` (weight `(out, in)`, bias `(out,)`):
/// `query_proj.weight` `(H·qkSize, querySize)`, `key_proj.weight` `(H·qkSize, keySize)`,
/// `value_proj.weight` `(H·voSize, valueSize)`, `output_proj.weight` `(outputSize, H·voSize)`, and
/// `query_proj.bias` … `output_proj.bias` when enabled.
///
/// Mapping from Equinox's names:
///
/// | Equinox                                   | Swift                                          |
/// |-------------------------------------------|------------------------------------------------|
/// | `num_heads`                               | `heads`                                        |
/// | `query_size`, `key_size`, `value_size`    | `querySize`, `keySize`, `valueSize`            |
/// | `output_size`, `qk_size`, `vo_size`       | `outputSize`, `qkSize`, `voSize`               |
/// | `use_query_bias` … `use_output_bias`      | `useQueryBias` … `useOutputBias`               |
/// | `dropout_p`                               | `dropoutProbability`                           |
/// | `inference` (constructor and call)        | `inference` (property and call override)      |
/// | `key` (constructor PRNG key)              | `using: &generator`                            |
/// | `key` (call, dropout PRNG key)            | `dropoutSeed`                                  |
/// | `key_` (call, the key input)              | `key`                                          |
/// | `mask`                                    | `mask` (a ``BooleanMask``, `true` attends)     |
/// | `process_heads(q, k, v) -> (q, k, v)`     | `processHeads: (inout AttentionHeads) throws -> Void` |
/// | `query_proj`, `key_proj`, `value_proj`, `output_proj` | `queryProjection`, `keyProjection`, `valueProjection`, `outputProjection` |
/// | `deterministic` (deprecated)              | — (use `inference`)                            |
/// | `dtype`                                   | always `Float`                                 |
/// | `jax.vmap(mha)(q, k, v, mask)`            | batched inputs `(B, L, size)`, masks with a leading `B` |
/// | `process_heads` applying RoPE             | `rotary:` (in place on the heads, no copy)     |
///
/// Behaviour that follows Equinox exactly:
/// - defaults: `keySize`, `valueSize`, `outputSize` = `querySize`; `qkSize`, `voSize` =
///   `querySize / heads` (integer division); every bias off;
/// - initialisation: each weight and each bias from `U(-1/√in, 1/√in)`, projections drawn in the
///   order query, key, value, output (weight, then bias);
/// - the scores are scaled by `1 / √qkSize` (Equinox divides the query by `√qkSize`);
/// - a mask has exactly the shape `(L, S)` (shared by the heads) or `(H, L, S)` (one per head);
/// - a query row whose every key is masked gets uniform weights, so its output is the output
///   projection of the mean of the value heads (Equinox masks with the most negative finite
///   float, not `-∞`): ``MaskedRowPolicy/meanOfValues``;
/// - dropout on the attention weights when `dropoutProbability > 0` and not in inference mode,
///   kept weights scaled by `1/(1 - p)`; a dropout seed is then required (Equinox's
///   `RuntimeError` without a key).
///
/// Differences: the dropout draws come from this package's counter-based hash (see ``Dropout``),
/// not from JAX's generator, so the same seed does not reproduce JAX's mask (the distribution is
/// the same); inputs may be batched directly instead of through `jax.vmap`.
public struct MultiheadAttention: ParameterizedModule, Equatable {
    /// The query projection (Equinox's `query_proj`): weight `(heads·qkSize, querySize)`.
    public var queryProjection: Linear

    /// The key projection (`key_proj`): weight `(heads·qkSize, keySize)`.
    public var keyProjection: Linear

    /// The value projection (`value_proj`): weight `(heads·voSize, valueSize)`.
    public var valueProjection: Linear

    /// The output projection (`output_proj`): weight `(outputSize, heads·voSize)`.
    public var outputProjection: Linear

    /// The number of heads (Equinox's `num_heads`).
    public let heads: Int

    /// The per-head size of the query and key heads (`qk_size`).
    public let qkSize: Int

    /// The per-head size of the value heads (`vo_size`).
    public let voSize: Int

    /// The dropout probability on the attention weights (`dropout_p`), in `[0, 1)`.
    public var dropoutProbability: Float

    /// Whether dropout is off by default (`inference`); a call's `inference:` argument overrides it.
    public var inference: Bool

    /// The concatenated query|key|value weights for self-attention, built on demand.
    let packedQKV = PackedProjectionCache()

    /// The last dimension of the query input (`query_size`).
    public var querySize: Int { queryProjection.inputSize }

    /// The last dimension of the key input (`key_size`).
    public var keySize: Int { keyProjection.inputSize }

    /// The last dimension of the value input (`value_size`).
    public var valueSize: Int { valueProjection.inputSize }

    /// The last dimension of the output (`output_size`).
    public var outputSize: Int { outputProjection.outputSize }

    /// Creates the module with Equinox's defaults and initialisation.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 42)
    /// let cross = try MultiheadAttention(
    ///     heads: 3, querySize: 8, keySize: 6, valueSize: 10, outputSize: 12, qkSize: 4, voSize: 3,
    ///     useQueryBias: true, useKeyBias: true, useValueBias: true, useOutputBias: true, using: &rng)
    /// ```
    ///
    /// - Parameters:
    ///   - heads: the number of heads, at least 1.
    ///   - querySize: the query's feature size.
    ///   - keySize: the key's feature size; default `querySize`.
    ///   - valueSize: the value's feature size; default `querySize`.
    ///   - outputSize: the output's feature size; default `querySize`.
    ///   - qkSize: the per-head size of queries and keys; default `querySize / heads`.
    ///   - voSize: the per-head size of values (and of the heads' outputs); default `querySize / heads`.
    ///   - useQueryBias: whether the query projection has a bias; default `false`.
    ///   - useKeyBias: whether the key projection has a bias; default `false`.
    ///   - useValueBias: whether the value projection has a bias; default `false`.
    ///   - useOutputBias: whether the output projection has a bias; default `false`.
    ///   - dropoutProbability: on the attention weights, in `[0, 1)`; default 0.
    ///   - inference: `true` disables dropout unless a call says otherwise; default `false`.
    ///   - generator: draws the weights and biases, query projection first.
    /// - Throws: `AttentionError.invalidArgument` naming the argument for a size below 1 (including
    ///   a default `qkSize`/`voSize` of `querySize / heads` = 0) or a probability outside `[0, 1)`;
    ///   `.overflow` when `heads · qkSize` does not fit in `Int`.
    public init(
        heads: Int, querySize: Int, keySize: Int? = nil, valueSize: Int? = nil, outputSize: Int? = nil,
        qkSize: Int? = nil, voSize: Int? = nil,
        useQueryBias: Bool = false, useKeyBias: Bool = false, useValueBias: Bool = false,
        useOutputBias: Bool = false, dropoutProbability: Float = 0, inference: Bool = false,
        using generator: inout some RandomNumberGenerator
    ) throws {
        guard heads >= 1 else {
            throw AttentionError.invalidArgument(argument: "heads", reason: "must be at least 1, got \(heads)")
        }
        let sizes = [
            ("querySize", querySize), ("keySize", keySize ?? querySize), ("valueSize", valueSize ?? querySize),
            ("outputSize", outputSize ?? querySize),
        ]
        for (name, size) in sizes where size < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        for (name, size) in [("qkSize", qkSize), ("voSize", voSize)] {
            let resolved = size ?? querySize / heads
            guard resolved >= 1 else {
                let reason = size == nil
                    ? "defaults to querySize / heads = \(querySize) / \(heads) = 0; give it explicitly"
                    : "must be at least 1, got \(resolved)"
                throw AttentionError.invalidArgument(argument: name, reason: reason)
            }
        }
        guard dropoutProbability >= 0, dropoutProbability < 1 else {
            throw AttentionError.invalidArgument(
                argument: "dropoutProbability", reason: "must be in [0, 1), got \(dropoutProbability)")
        }
        let qk = qkSize ?? querySize / heads, vo = voSize ?? querySize / heads
        let qkWidth = try checkedProduct(heads, qk, argument: "qkSize")
        let voWidth = try checkedProduct(heads, vo, argument: "voSize")
        self.heads = heads
        self.qkSize = qk
        self.voSize = vo
        self.dropoutProbability = dropoutProbability
        self.inference = inference
        queryProjection = try Linear(inputSize: querySize, outputSize: qkWidth, bias: useQueryBias, using: &generator)
        keyProjection = try Linear(
            inputSize: keySize ?? querySize, outputSize: qkWidth, bias: useKeyBias, using: &generator)
        valueProjection = try Linear(
            inputSize: valueSize ?? querySize, outputSize: voWidth, bias: useValueBias, using: &generator)
        outputProjection = try Linear(
            inputSize: voWidth, outputSize: outputSize ?? querySize, bias: useOutputBias, using: &generator)
    }

    /// The four projections' weights (`query_proj.weight`, ..., `output_proj.weight`).
    public var matrixWeightNames: Set<String> {
        matrixWeightNames(of: \.queryProjection, prefixedBy: "query_proj")
            .union(matrixWeightNames(of: \.keyProjection, prefixedBy: "key_proj"))
            .union(matrixWeightNames(of: \.valueProjection, prefixedBy: "value_proj"))
            .union(matrixWeightNames(of: \.outputProjection, prefixedBy: "output_proj"))
    }

    /// `query_proj.*`, `key_proj.*`, `value_proj.*`, `output_proj.*`: each `weight`, then `bias`
    /// when present, in Equinox's field order.
    public var parameterPaths: [ParameterPath<MultiheadAttention>] {
        parameterPaths(of: \.queryProjection, prefixedBy: "query_proj")
            + parameterPaths(of: \.keyProjection, prefixedBy: "key_proj")
            + parameterPaths(of: \.valueProjection, prefixedBy: "value_proj")
            + parameterPaths(of: \.outputProjection, prefixedBy: "output_proj")
    }

    /// Two modules are equal when their configuration and parameters are.
    public static func == (lhs: MultiheadAttention, rhs: MultiheadAttention) -> Bool {
        lhs.heads == rhs.heads && lhs.qkSize == rhs.qkSize && lhs.voSize == rhs.voSize
            && lhs.dropoutProbability == rhs.dropoutProbability && lhs.inference == rhs.inference
            && lhs.queryProjection == rhs.queryProjection && lhs.keyProjection == rhs.keyProjection
            && lhs.valueProjection == rhs.valueProjection && lhs.outputProjection == rhs.outputProjection
    }
}
