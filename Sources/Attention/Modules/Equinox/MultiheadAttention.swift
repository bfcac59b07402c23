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
    ///
    /// ```swift
    /// attention.queryProjection.weight.shape   // [64, 64]
    /// ```
    public var queryProjection: Linear

    /// The key projection (`key_proj`): weight `(heads·qkSize, keySize)`.
    ///
    /// ```swift
    /// attention.keyProjection.bias   // nil unless useKeyBias
    /// ```
    public var keyProjection: Linear

    /// The value projection (`value_proj`): weight `(heads·voSize, valueSize)`.
    ///
    /// ```swift
    /// attention.valueProjection.outputSize   // heads · voSize
    /// ```
    public var valueProjection: Linear

    /// The output projection (`output_proj`): weight `(outputSize, heads·voSize)`.
    ///
    /// ```swift
    /// attention.outputProjection.outputSize   // outputSize
    /// ```
    public var outputProjection: Linear

    /// The number of heads (Equinox's `num_heads`).
    ///
    /// ```swift
    /// try MultiheadAttention(heads: 4, querySize: 64, using: &rng).heads   // 4
    /// ```
    public let heads: Int

    /// The per-head size of the query and key heads (`qk_size`).
    ///
    /// ```swift
    /// try MultiheadAttention(heads: 4, querySize: 64, using: &rng).qkSize   // 16
    /// ```
    public let qkSize: Int

    /// The per-head size of the value heads (`vo_size`).
    ///
    /// ```swift
    /// try MultiheadAttention(heads: 4, querySize: 64, voSize: 8, using: &rng).voSize   // 8
    /// ```
    public let voSize: Int

    /// The dropout probability on the attention weights (`dropout_p`), in `[0, 1)`.
    ///
    /// ```swift
    /// var attention = try MultiheadAttention(heads: 2, querySize: 8, dropoutProbability: 0.1, using: &rng)
    /// attention.dropoutProbability = 0.2
    /// ```
    public var dropoutProbability: Float

    /// Whether dropout is off by default (`inference`); a call's `inference:` argument overrides it.
    ///
    /// ```swift
    /// attention.inference = true   // evaluation: no dropout, no seed needed
    /// ```
    public var inference: Bool

    /// The concatenated query|key|value weights for self-attention, built on demand.
    private let packedQKV = PackedProjectionCache()

    /// The last dimension of the query input (`query_size`).
    ///
    /// ```swift
    /// attention.querySize   // 64
    /// ```
    public var querySize: Int { queryProjection.inputSize }

    /// The last dimension of the key input (`key_size`).
    ///
    /// ```swift
    /// attention.keySize   // 64 unless given
    /// ```
    public var keySize: Int { keyProjection.inputSize }

    /// The last dimension of the value input (`value_size`).
    ///
    /// ```swift
    /// attention.valueSize   // 64 unless given
    /// ```
    public var valueSize: Int { valueProjection.inputSize }

    /// The last dimension of the output (`output_size`).
    ///
    /// ```swift
    /// attention.outputSize   // 64 unless given
    /// ```
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
    ///   - keySize, valueSize, outputSize: default `querySize`.
    ///   - qkSize, voSize: per-head sizes; default `querySize / heads`.
    ///   - useQueryBias, useKeyBias, useValueBias, useOutputBias: default `false`.
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

    /// `query_proj.*`, `key_proj.*`, `value_proj.*`, `output_proj.*`: each `weight`, then `bias`
    /// when present, in Equinox's field order.
    ///
    /// ```swift
    /// try MultiheadAttention(heads: 2, querySize: 8, using: &rng).parameterPaths.map(\.name)
    /// // ["query_proj.weight", "key_proj.weight", "value_proj.weight", "output_proj.weight"]
    /// ```
    public var parameterPaths: [ParameterPath<MultiheadAttention>] {
        parameterPaths(of: \.queryProjection, prefixedBy: "query_proj")
            + parameterPaths(of: \.keyProjection, prefixedBy: "key_proj")
            + parameterPaths(of: \.valueProjection, prefixedBy: "value_proj")
            + parameterPaths(of: \.outputProjection, prefixedBy: "output_proj")
    }

    /// Two modules are equal when their configuration and parameters are.
    ///
    /// ```swift
    /// var a = SeededGenerator(seed: 1), b = SeededGenerator(seed: 1)
    /// try MultiheadAttention(heads: 2, querySize: 8, using: &a) == MultiheadAttention(heads: 2, querySize: 8, using: &b)   // true
    /// ```
    public static func == (lhs: MultiheadAttention, rhs: MultiheadAttention) -> Bool {
        lhs.heads == rhs.heads && lhs.qkSize == rhs.qkSize && lhs.voSize == rhs.voSize
            && lhs.dropoutProbability == rhs.dropoutProbability && lhs.inference == rhs.inference
            && lhs.queryProjection == rhs.queryProjection && lhs.keyProjection == rhs.keyProjection
            && lhs.valueProjection == rhs.valueProjection && lhs.outputProjection == rhs.outputProjection
    }

    // MARK: - Calling

    /// Self-attention: `self(query: x, key: x, value: x, ...)`, with the three input projections
    /// computed by one matrix multiply.
    ///
    /// ```swift
    /// let y = try attention(x)                                    // x: (L, querySize) or (B, L, querySize)
    /// let r = try attention(x, rotary: RotaryPositionalEmbedding(embeddingSize: attention.qkSize))
    /// ```
    ///
    /// Requires `keySize == valueSize == querySize`. Arguments, result and errors as
    /// ``callAsFunction(query:key:value:mask:inference:dropoutSeed:rotary:processHeads:)``.
    public func callAsFunction(
        _ x: Tensor, mask: BooleanMask? = nil, inference: Bool? = nil, dropoutSeed: UInt64? = nil,
        rotary: RotaryPositionalEmbedding? = nil, processHeads: ((inout AttentionHeads) throws -> Void)? = nil
    ) throws -> Tensor {
        try callAsFunction(
            query: x, key: x, value: x, mask: mask, inference: inference, dropoutSeed: dropoutSeed,
            rotary: rotary, processHeads: processHeads)
    }

    /// Multi-head attention of `query` over `key` and `value`.
    ///
    /// ```swift
    /// // Cross-attention of 4 queries over 9 keys, with a per-head mask and dropout.
    /// let out = try attention(
    ///     query: decoderStates, key: encoderStates, value: encoderStates,
    ///     mask: perHeadMask, inference: false, dropoutSeed: 1234)
    ///
    /// // Equinox's process_heads example, RoPE on the query and key heads:
    /// let rope = try RotaryPositionalEmbedding(embeddingSize: attention.qkSize)
    /// let y = try attention(query: x, key: x, value: x) { heads in
    ///     try rope.rotateHeads(&heads.query)
    ///     try rope.rotateHeads(&heads.key)
    /// }
    /// // The same, in place inside the projections, without the hook:
    /// let z = try attention(query: x, key: x, value: x, rotary: rope)
    /// ```
    ///
    /// - Parameters:
    ///   - query: `(L, querySize)`, or batched `(B, L, querySize)`.
    ///   - key: `(S, keySize)` or `(B, S, keySize)`, the query's rank.
    ///   - value: `(S, valueSize)` or `(B, S, valueSize)`, as many positions as the key.
    ///   - mask: `true` attends. Unbatched: `(L, S)` for every head or `(H, L, S)` per head.
    ///     Batched: `(B, L, S)` or `(B, H, L, S)`, or `(L, S)` shared by the whole batch.
    ///     A row with no `true` gives the mean of the value heads.
    ///   - inference: overrides the module's ``inference`` for this call.
    ///   - dropoutSeed: the seed of the dropout mask; required when dropout is active
    ///     (`dropoutProbability > 0` and not in inference mode), ignored otherwise. The decisions
    ///     depend on the seed and the (batch, head, query, key) coordinates only.
    ///   - rotary: a rotary embedding of size `qkSize`, applied in place to the query heads
    ///     (positions `0 ..< L`) and the key heads (positions `0 ..< S`) after the projections, as
    ///     Equinox's documented RoPE `process_heads`; values untouched.
    ///   - processHeads: Equinox's `process_heads`: called with the heads after the projections
    ///     (and after `rotary`), before the attention; it may change their values, not their shapes.
    /// - Returns: `(L, outputSize)` or `(B, L, outputSize)`.
    /// - Throws: `AttentionError.shapeMismatch` for a wrong rank or size (`"query"`, `"key"`,
    ///   `"value"` — including key and value lengths that differ), a mask of another shape
    ///   (`"mask"`), heads whose shape `processHeads` changed (`"processHeads"`), or projections
    ///   replaced by inconsistent ones (`"queryProjection"` …); `.invalidArgument` for an empty
    ///   sequence or batch, a missing seed (`"dropoutSeed"`), a `rotary` of another size
    ///   (`"rotary"`) or a probability outside `[0, 1)` (`"dropoutProbability"`); anything
    ///   `processHeads` throws; the kernels' errors.
    public func callAsFunction(
        query: Tensor, key: Tensor, value: Tensor, mask: BooleanMask? = nil, inference: Bool? = nil,
        dropoutSeed: UInt64? = nil, rotary: RotaryPositionalEmbedding? = nil,
        processHeads: ((inout AttentionHeads) throws -> Void)? = nil
    ) throws -> Tensor {
        try validateParameters()
        let (batch, length, keyLength) = try validateInputs(query: query, key: key, value: value)
        let batched = query.rank == 3
        let maskStrides = try validateMask(mask, batched: batched, batch: batch, length: length, keyLength: keyLength)
        let dropout = try activeDropout(inference: inference, seed: dropoutSeed)
        if let rotary, rotary.embeddingSize != qkSize {
            throw AttentionError.invalidArgument(
                argument: "rotary",
                reason: "its embeddingSize \(rotary.embeddingSize) must equal qkSize \(qkSize)")
        }

        let (h, qk, vo) = (heads, qkSize, voSize)
        let lead = batched ? [batch] : []
        var views: (query: StridedHeads, key: StridedHeads, value: StridedHeads)
        var separate: AttentionHeads? = nil
        if isSelfAttention(query: query, key: key, value: value) {
            // One matmul; the heads are read in place from its rows [q heads | k heads | v heads].
            let (weight, bias) = try packedInputProjection()
            var packed = try projectLastAxis(query, weight: weight, layout: .outputsByInputs, bias: bias)
            let width = 2 * h * qk + h * vo
            if let rotary {
                // The query and key heads are adjacent in every row: rotate them as 2H heads at once.
                var queryAndKey = StridedHeads(rows: packed, batch: batch, length: length, rowWidth: width, heads: 2 * h, dim: qk)
                try rotary.rotate(&queryAndKey, positionOffset: 0)
                packed = queryAndKey.tensor
            }
            if processHeads != nil {
                separate = AttentionHeads(
                    query: try packed.sliced(0 ..< h * qk, axis: -1).reshaped(lead + [length, h, qk]),
                    key: try packed.sliced(h * qk ..< 2 * h * qk, axis: -1).reshaped(lead + [keyLength, h, qk]),
                    value: try packed.sliced(2 * h * qk ..< width, axis: -1).reshaped(lead + [keyLength, h, vo]))
            }
            views = (
                StridedHeads(rows: packed, batch: batch, length: length, rowWidth: width, offset: 0, heads: h, dim: qk),
                StridedHeads(
                    rows: packed, batch: batch, length: keyLength, rowWidth: width, offset: h * qk, heads: h, dim: qk),
                StridedHeads(
                    rows: packed, batch: batch, length: keyLength, rowWidth: width, offset: 2 * h * qk, heads: h,
                    dim: vo))
        } else {
            var heads = AttentionHeads(
                query: try queryProjection(query).reshaped(lead + [length, h, qk]),
                key: try keyProjection(key).reshaped(lead + [keyLength, h, qk]),
                value: try valueProjection(value).reshaped(lead + [keyLength, h, vo]))
            if let rotary {
                try rotary.rotateHeads(&heads.query)
                try rotary.rotateHeads(&heads.key)
            }
            separate = heads
            views = Self.views(of: heads, batch: batch, length: length, keyLength: keyLength, h: h, qk: qk, vo: vo)
        }
        if let processHeads, var heads = separate {
            let shapes = [heads.query.shape, heads.key.shape, heads.value.shape]
            try processHeads(&heads)
            for (name, before, after) in zip3(["query", "key", "value"], shapes, [heads.query.shape, heads.key.shape, heads.value.shape])
            where before != after {
                throw AttentionError.shapeMismatch(
                    argument: "processHeads",
                    expected: "\(name) heads of shape \(before): processHeads must not change the shape of the heads",
                    actual: after)
            }
            views = Self.views(of: heads, batch: batch, length: length, keyLength: keyLength, h: h, qk: qk, vo: vo)
        }

        var call = AttentionKernelCall(query: views.query, key: views.key, value: views.value)
        if let mask { call.mask.allowed = (mask.values, maskStrides) }
        (call.scale, call.dropout, call.maskedRows) = (1 / Float(qk).squareRoot(), dropout, .meanOfValues)
        let attended = try call.run(
            outputShape: lead + [length, h * vo], outputLayout: .sequence,
            context: "query \(query.shape), key \(key.shape), value \(value.shape)").output
        return try outputProjection(attended)
    }

    // MARK: - Helpers

    private static func views(
        of heads: AttentionHeads, batch: Int, length: Int, keyLength: Int, h: Int, qk: Int, vo: Int
    ) -> (query: StridedHeads, key: StridedHeads, value: StridedHeads) {
        (
            StridedHeads(dense: heads.query, layout: .sequence, batch: batch, length: length, heads: h, dim: qk),
            StridedHeads(dense: heads.key, layout: .sequence, batch: batch, length: keyLength, heads: h, dim: qk),
            StridedHeads(dense: heads.value, layout: .sequence, batch: batch, length: keyLength, heads: h, dim: vo)
        )
    }

    /// The same tensor (same storage and shape) as query, key and value.
    private func isSelfAttention(query: Tensor, key: Tensor, value: Tensor) -> Bool {
        query.storage === key.storage && key.storage === value.storage
            && query.shape == key.shape && key.shape == value.shape
    }

    /// The query, key and value weights stacked `(2·H·qkSize + H·voSize, querySize)`, and their
    /// biases (zeros for an absent one) when any is present.
    private func packedInputProjection() throws -> (weight: Tensor, bias: Tensor?) {
        let layers = [queryProjection, keyProjection, valueProjection]
        return try packedQKV.packed(for: layers.map(\.weight) + layers.map(\.bias)) {
            let weight = try Tensor.concatenated(layers.map(\.weight), axis: 0)
            guard layers.contains(where: { $0.bias != nil }) else { return (weight, nil) }
            let biases = try layers.map { try $0.bias ?? Tensor(zeros: [$0.outputSize]) }
            return (weight, try Tensor.concatenated(biases, axis: 0))
        }
    }

    /// Checks the projections (public and mutable) against `heads`, `qkSize` and `voSize`.
    private func validateParameters() throws(AttentionError) {
        let expectations = [
            ("queryProjection", queryProjection, heads * qkSize), ("keyProjection", keyProjection, heads * qkSize),
            ("valueProjection", valueProjection, heads * voSize),
        ]
        for (name, layer, outputs) in expectations {
            let weight = layer.weight
            guard weight.rank == 2, weight.shape[0] == outputs, weight.shape[1] >= 1 else {
                throw .shapeMismatch(
                    argument: "\(name).weight", expected: "[\(outputs), inputSize] (heads·headSize, inputSize)",
                    actual: weight.shape)
            }
            if let bias = layer.bias, bias.shape != [outputs] {
                throw .shapeMismatch(argument: "\(name).bias", expected: "[\(outputs)]", actual: bias.shape)
            }
        }
        let weight = outputProjection.weight
        guard weight.rank == 2, weight.shape[1] == heads * voSize, weight.shape[0] >= 1 else {
            throw .shapeMismatch(
                argument: "outputProjection.weight", expected: "[outputSize, \(heads * voSize)] (outputSize, heads·voSize)",
                actual: weight.shape)
        }
        if let bias = outputProjection.bias, bias.shape != [weight.shape[0]] {
            throw .shapeMismatch(argument: "outputProjection.bias", expected: "[\(weight.shape[0])]", actual: bias.shape)
        }
    }

    /// The batch (1 when unbatched), query length and key length, after checking the shapes.
    private func validateInputs(query: Tensor, key: Tensor, value: Tensor) throws(AttentionError)
        -> (batch: Int, length: Int, keyLength: Int)
    {
        let rank = query.rank
        guard rank == 2 || rank == 3, query.shape[rank - 1] == querySize else {
            throw .shapeMismatch(
                argument: "query", expected: "[L, \(querySize)] (L, querySize), or batched (B, L, querySize)",
                actual: query.shape)
        }
        let batch = rank == 3 ? query.shape[0] : 1
        let lead = rank == 3 ? "\(batch), " : ""
        let leadName = rank == 3 ? "B, " : ""
        guard key.rank == rank, key.shape[rank - 1] == keySize, rank == 2 || key.shape[0] == batch else {
            throw .shapeMismatch(
                argument: "key", expected: "[\(lead)S, \(keySize)] (\(leadName)S, keySize), the query's rank and batch",
                actual: key.shape)
        }
        let keyLength = key.shape[rank - 2]
        guard value.rank == rank, value.shape[rank - 1] == valueSize, rank == 2 || value.shape[0] == batch,
              value.shape[rank - 2] == keyLength
        else {
            throw .shapeMismatch(
                argument: "value",
                expected: "[\(lead)\(keyLength), \(valueSize)] (\(leadName)S, valueSize), as many positions as the key",
                actual: value.shape)
        }
        let length = query.shape[rank - 2]
        for (name, size) in [("query", length), ("key", keyLength), ("query", batch)] where size < 1 {
            throw .invalidArgument(argument: name, reason: "every dimension must be at least 1, got shape \(name == "key" ? key.shape : query.shape)")
        }
        return (batch, length, keyLength)
    }

    /// The mask's strides against (B, H, L, S), after checking its shape: (L, S), (H, L, S)
    /// unbatched, (B, L, S) or (B, H, L, S) batched.
    private func validateMask(
        _ mask: BooleanMask?, batched: Bool, batch: Int, length: Int, keyLength: Int
    ) throws(AttentionError) -> ScoreStrides {
        guard let mask else { return ScoreStrides() }
        let (l, s, h) = (length, keyLength, heads)
        let scores = [batch, h, l, s]
        switch mask.shape {
        case [l, s], [h, l, s] where !batched, [batch, h, l, s] where batched:
            return ScoreStrides(broadcasting: mask.shape, to: scores)!
        case [batch, l, s] where batched:
            return ScoreStrides(broadcasting: [batch, 1, l, s], to: scores)!
        default:
            let expected = batched
                ? "[\(batch), \(l), \(s)] (B, L, S), [\(batch), \(h), \(l), \(s)] (B, H, L, S) or [\(l), \(s)] (L, S)"
                : "[\(l), \(s)] (L, S) or [\(h), \(l), \(s)] (H, L, S)"
            throw .shapeMismatch(argument: "mask", expected: expected, actual: mask.shape)
        }
    }

    /// The dropout of this call, or `nil` when it is off.
    private func activeDropout(inference: Bool?, seed: UInt64?) throws(AttentionError) -> Dropout? {
        guard dropoutProbability >= 0, dropoutProbability < 1 else {
            throw .invalidArgument(
                argument: "dropoutProbability", reason: "must be in [0, 1), got \(dropoutProbability)")
        }
        if dropoutProbability == 0 || (inference ?? self.inference) { return nil }
        guard let seed else {
            throw .invalidArgument(
                argument: "dropoutSeed",
                reason: "a seed is required for dropout (dropoutProbability \(dropoutProbability), not in inference "
                    + "mode); pass dropoutSeed:, or inference: true")
        }
        return Dropout(probability: dropoutProbability, seed: seed)
    }
}

/// Three sequences zipped.
private func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    zip(a, zip(b, c)).map { ($0, $1.0, $1.1) }
}
