/// PyTorch's `torch.nn.MultiheadAttention`: the same parameters under the same `state_dict`
/// names, the same initialisation distributions, and the same forward pass, option for option
/// (noxton's `noxton.nn.MultiheadAttention` is a port of it; where noxton departs from PyTorch,
/// this type follows PyTorch).
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let mha = try TorchMultiheadAttention(embedDim: 64, heads: 4, using: &rng)
/// let x = try Tensor(randomNormal: [10, 64], using: &rng)            // unbatched (L, E)
/// let (out, weights) = try mha(query: x, key: x, value: x)            // out (10, 64), weights (10, 10)
/// let causal = try TorchMask.squareSubsequent(10)
/// let (y, _) = try mha(query: x, key: x, value: x, needWeights: false, attentionMask: causal, isCausal: true)
/// ```
///
/// ## Names
///
/// | PyTorch                                   | Swift                                        |
/// |-------------------------------------------|----------------------------------------------|
/// | `embed_dim`                               | ``embedDim``                                 |
/// | `num_heads`                               | ``heads``                                    |
/// | `dropout`                                 | ``dropout``                                  |
/// | `bias`                                    | `bias:` (``inProjectionBias``, `outProjection.bias`) |
/// | `add_bias_kv`                             | `addBiasKV:` (``biasKey``, ``biasValue``)    |
/// | `add_zero_attn`                           | ``addZeroAttention``                         |
/// | `kdim`, `vdim`                            | ``keyDim``, ``valueDim``                     |
/// | `batch_first`                             | ``batchFirst``                               |
/// | `_qkv_same_embed_dim`                     | ``usesPackedInProjection``                   |
/// | `head_dim`                                | ``headDim``                                  |
/// | `in_proj_weight` (3E, E)                  | ``inProjectionWeight``                       |
/// | `q_proj_weight`, `k_proj_weight`, `v_proj_weight` | ``queryProjectionWeight``, ``keyProjectionWeight``, ``valueProjectionWeight`` |
/// | `in_proj_bias` (3E)                       | ``inProjectionBias``                         |
/// | `out_proj.weight`, `out_proj.bias`        | ``outProjection`` (a ``Linear``)             |
/// | `bias_k`, `bias_v` (1, 1, E)              | ``biasKey``, ``biasValue``                   |
/// | `forward(query, key, value, ...)`         | ``callAsFunction(query:key:value:keyPaddingMask:needWeights:attentionMask:averageAttentionWeights:isCausal:training:dropoutSeed:)`` |
/// | `key_padding_mask`, `attn_mask`           | `keyPaddingMask:`, `attentionMask:` (``TorchMask``) |
/// | `need_weights`, `average_attn_weights`, `is_causal` | `needWeights:`, `averageAttentionWeights:`, `isCausal:` |
/// | `module.train()` / `module.eval()`        | `training:` (`false` by default: eval)       |
/// | the global RNG (dropout)                  | `dropoutSeed:`                               |
///
/// The parameter names of ``parameterPaths`` are PyTorch's `state_dict` names, so a PyTorch
/// checkpoint loads directly:
///
/// ```swift
/// var mha = try TorchMultiheadAttention(embedDim: 512, heads: 8, using: &rng)
/// try mha.loadParameters(from: SafeTensors(contentsOf: url), prefix: "encoder.self_attn")
/// ```
///
/// ## Differences from noxton
///
/// noxton's port differs from PyTorch in ways this type does not follow (REFERENCE §3, D1–D9):
/// `kdim`/`vdim` different from `embed_dim` work here (D1); `bias_k`/`bias_v` are appended
/// before the zero slot and the masks are padded with "attend" columns, so the weights' last two
/// columns are PyTorch's (D2, D3); a 3-D mask is per batch and head (D4); a float key padding mask
/// is added, not treated as "nonzero masks" (D5); `isCausal` is PyTorch's hint (D6); the query is
/// scaled before the product (D7); `needWeights: false` gives zeros, not NaN, for a fully masked
/// row (D8). noxton's parameters are PyTorch's names with `bias_k`/`bias_v` of shape (1, E):
/// reshape them to (1, 1, E) to load.
///
/// ## Computation
///
/// Self-attention (`query`, `key` and `value` the same tensor, i.e. sharing storage) projects
/// with **one** matmul of `3E` outputs, and the attention reads the query, key and value in place
/// from it; cross-attention projects the query, and the key and value with one matmul when they
/// are the same tensor. With `needWeights: false` the attention is the fused kernel
/// (PyTorch's SDPA path); with `needWeights: true` it is PyTorch's explicit path: scores from a
/// matmul onto the mask, a row softmax, and a matmul with the values. Masks are never expanded to
/// `(N·H, L, S)`.
public struct TorchMultiheadAttention: ParameterizedModule, Equatable {
    /// The model width E: the query's last dimension and the output's (`embed_dim`).
    ///
    /// ```swift
    /// mha.embedDim   // 64
    /// ```
    public let embedDim: Int

    /// The number of heads H (`num_heads`); `embedDim` is a multiple of it.
    ///
    /// ```swift
    /// mha.heads   // 4
    /// ```
    public let heads: Int

    /// The key's last dimension (`kdim`); `embedDim` unless given.
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, keyDim: 6, using: &rng).keyDim   // 6
    /// ```
    public let keyDim: Int

    /// The value's last dimension (`vdim`); `embedDim` unless given.
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, valueDim: 10, using: &rng).valueDim   // 10
    /// ```
    public let valueDim: Int

    /// The dropout probability on the attention weights in training, in `[0, 1)` (`dropout`).
    ///
    /// ```swift
    /// var mha = try TorchMultiheadAttention(embedDim: 64, heads: 4, dropout: 0.1, using: &rng)
    /// mha.dropout = 0.2
    /// ```
    public var dropout: Float

    /// Whether a zero key and a zero value are appended after the (projected) keys and values, and
    /// after ``biasKey``/``biasValue`` (`add_zero_attn`).
    ///
    /// ```swift
    /// mha.addZeroAttention   // false
    /// ```
    public var addZeroAttention: Bool

    /// Whether batched inputs and outputs are `(N, L, E)` (`true`) or `(L, N, E)` (`false`, the
    /// default, as PyTorch) (`batch_first`). Unbatched `(L, E)` inputs ignore it.
    ///
    /// ```swift
    /// var mha = try TorchMultiheadAttention(embedDim: 64, heads: 4, batchFirst: true, using: &rng)
    /// ```
    public var batchFirst: Bool

    /// The packed query, key and value projection weights `(3E, E)`, rows `[0, E)` for the query,
    /// `[E, 2E)` for the key and `[2E, 3E)` for the value (`in_proj_weight`). Present exactly when
    /// ``usesPackedInProjection``.
    ///
    /// ```swift
    /// mha.inProjectionWeight?.shape   // [192, 64]
    /// ```
    public var inProjectionWeight: Tensor?

    /// The query projection weight `(E, E)` when the key or value width differs from E
    /// (`q_proj_weight`).
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, keyDim: 6, using: &rng).queryProjectionWeight?.shape   // [8, 8]
    /// ```
    public var queryProjectionWeight: Tensor?

    /// The key projection weight `(E, kdim)` when the key or value width differs from E
    /// (`k_proj_weight`).
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, keyDim: 6, using: &rng).keyProjectionWeight?.shape   // [8, 6]
    /// ```
    public var keyProjectionWeight: Tensor?

    /// The value projection weight `(E, vdim)` when the key or value width differs from E
    /// (`v_proj_weight`).
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, valueDim: 10, using: &rng).valueProjectionWeight?.shape   // [8, 10]
    /// ```
    public var valueProjectionWeight: Tensor?

    /// The query, key and value projection biases `(3E,)`, in that order, with packed and with
    /// separate weights alike (`in_proj_bias`); `nil` with `bias: false`.
    ///
    /// ```swift
    /// mha.inProjectionBias?.shape   // [192]
    /// ```
    public var inProjectionBias: Tensor?

    /// The output projection `(E, E)` with its bias `(E,)` (`out_proj`).
    ///
    /// ```swift
    /// mha.outProjection.weight.shape   // [64, 64]
    /// ```
    public var outProjection: Linear

    /// The key appended to the projected keys of every batch, `(1, 1, E)` (`bias_k`); `nil`
    /// unless `addBiasKV`.
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, using: &rng).biasKey?.shape   // [1, 1, 8]
    /// ```
    public var biasKey: Tensor?

    /// The value appended to the projected values of every batch, `(1, 1, E)` (`bias_v`); `nil`
    /// unless `addBiasKV`.
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, using: &rng).biasValue?.shape   // [1, 1, 8]
    /// ```
    public var biasValue: Tensor?

    /// The size of each head, `embedDim / heads` (`head_dim`).
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 64, heads: 4, using: &rng).headDim   // 16
    /// ```
    public var headDim: Int { embedDim / heads }

    /// Whether the key and value widths equal `embedDim`, so the three projection weights are
    /// packed in ``inProjectionWeight`` (PyTorch's `_qkv_same_embed_dim`).
    ///
    /// ```swift
    /// try TorchMultiheadAttention(embedDim: 8, heads: 2, keyDim: 6, using: &rng).usesPackedInProjection   // false
    /// ```
    public var usesPackedInProjection: Bool { keyDim == embedDim && valueDim == embedDim }

    /// Creates the module with PyTorch's initialisation (`_reset_parameters`): Xavier-uniform
    /// projection weights (the packed `(3E, E)` one with fans E and 3E), zero projection biases,
    /// an output weight from `U(±1/√E)` with a zero bias, and Xavier-normal `bias_k`/`bias_v`
    /// (`N(0, 1/E)`). Drawn in that order from `generator`.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 1)
    /// let crossAttention = try TorchMultiheadAttention(
    ///     embedDim: 8, heads: 2, keyDim: 6, valueDim: 10, batchFirst: true, using: &rng)
    /// ```
    ///
    /// - Parameters:
    ///   - embedDim: E (`embed_dim`), at least 1.
    ///   - heads: H (`num_heads`), at least 1 and dividing E.
    ///   - dropout: the attention-weight dropout probability in training, in `[0, 1)`.
    ///   - bias: whether the in- and out-projections have biases.
    ///   - addBiasKV: whether to learn `bias_k` and `bias_v`.
    ///   - addZeroAttention: whether to append a zero key and value.
    ///   - keyDim: the key width (`kdim`), E when `nil`.
    ///   - valueDim: the value width (`vdim`), E when `nil`.
    ///   - batchFirst: `(N, L, E)` batched inputs instead of `(L, N, E)`.
    /// - Throws: `AttentionError.invalidArgument` (`"embedDim"`, `"heads"`, `"keyDim"`,
    ///   `"valueDim"`, `"dropout"`) as PyTorch's `ValueError`/`AssertionError`: a size below 1,
    ///   `embed_dim must be divisible by num_heads`, or a probability outside `[0, 1)`.
    public init(
        embedDim: Int, heads: Int, dropout: Float = 0, bias: Bool = true, addBiasKV: Bool = false,
        addZeroAttention: Bool = false, keyDim: Int? = nil, valueDim: Int? = nil, batchFirst: Bool = false,
        using generator: inout some RandomNumberGenerator
    ) throws {
        try self.init(
            structure: embedDim, heads: heads, dropout: dropout, bias: bias, addBiasKV: addBiasKV,
            addZeroAttention: addZeroAttention, keyDim: keyDim ?? embedDim, valueDim: valueDim ?? embedDim,
            batchFirst: batchFirst)
        let (e, k, v) = (embedDim, self.keyDim, self.valueDim)
        if usesPackedInProjection {
            inProjectionWeight = try .xavierUniform([3 * e, e], fanIn: e, fanOut: 3 * e, using: &generator)
        } else {
            queryProjectionWeight = try .xavierUniform([e, e], fanIn: e, fanOut: e, using: &generator)
            keyProjectionWeight = try .xavierUniform([e, k], fanIn: k, fanOut: e, using: &generator)
            valueProjectionWeight = try .xavierUniform([e, v], fanIn: v, fanOut: e, using: &generator)
        }
        outProjection = try Linear(
            weight: .uniform([e, e], limit: 1 / Float(e).squareRoot(), using: &generator),
            bias: bias ? Tensor(zeros: [e]) : nil)
        if addBiasKV {
            biasKey = try .xavierNormal([1, 1, e], fanIn: e, fanOut: e, using: &generator)
            biasValue = try .xavierNormal([1, 1, e], fanIn: e, fanOut: e, using: &generator)
        }
    }

    /// Checks the structural options and creates zero parameters of the right shapes.
    init(
        structure embedDim: Int, heads: Int, dropout: Float, bias: Bool, addBiasKV: Bool,
        addZeroAttention: Bool, keyDim: Int, valueDim: Int, batchFirst: Bool
    ) throws {
        guard embedDim >= 1 else {
            throw AttentionError.invalidArgument(
                argument: "embedDim", reason: "embed_dim and num_heads must be greater than 0, got embed_dim=\(embedDim)")
        }
        guard heads >= 1 else {
            throw AttentionError.invalidArgument(
                argument: "heads", reason: "embed_dim and num_heads must be greater than 0, got num_heads=\(heads)")
        }
        guard embedDim % heads == 0 else {
            throw AttentionError.invalidArgument(
                argument: "heads", reason: "embed_dim must be divisible by num_heads: \(embedDim) is not a multiple of \(heads)")
        }
        for (name, size) in [("keyDim", keyDim), ("valueDim", valueDim)] where size < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        guard dropout >= 0, dropout < 1 else {
            throw AttentionError.invalidArgument(argument: "dropout", reason: "must be in [0, 1), got \(dropout)")
        }
        self.embedDim = embedDim
        self.heads = heads
        self.keyDim = keyDim
        self.valueDim = valueDim
        self.dropout = dropout
        self.addZeroAttention = addZeroAttention
        self.batchFirst = batchFirst
        let e = embedDim
        if keyDim == e && valueDim == e {
            inProjectionWeight = try Tensor(zeros: [3 * e, e])
        } else {
            queryProjectionWeight = try Tensor(zeros: [e, e])
            keyProjectionWeight = try Tensor(zeros: [e, keyDim])
            valueProjectionWeight = try Tensor(zeros: [e, valueDim])
        }
        inProjectionBias = bias ? try Tensor(zeros: [3 * e]) : nil
        outProjection = try Linear(weight: Tensor(zeros: [e, e]), bias: bias ? Tensor(zeros: [e]) : nil)
        if addBiasKV {
            biasKey = try Tensor(zeros: [1, 1, e])
            biasValue = try Tensor(zeros: [1, 1, e])
        }
    }

    /// PyTorch's `state_dict` names, in its order: `in_proj_weight` (or `q_proj_weight`,
    /// `k_proj_weight`, `v_proj_weight`), `in_proj_bias`, `bias_k`, `bias_v`, `out_proj.weight`,
    /// `out_proj.bias`, each when present.
    ///
    /// ```swift
    /// mha.parameterPaths.map(\.name)
    /// // ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    /// ```
    public var parameterPaths: [ParameterPath<TorchMultiheadAttention>] {
        var paths: [ParameterPath<TorchMultiheadAttention>] = []
        if inProjectionWeight != nil { paths.append(("in_proj_weight", \.inProjectionWeight!)) }
        if queryProjectionWeight != nil { paths.append(("q_proj_weight", \.queryProjectionWeight!)) }
        if keyProjectionWeight != nil { paths.append(("k_proj_weight", \.keyProjectionWeight!)) }
        if valueProjectionWeight != nil { paths.append(("v_proj_weight", \.valueProjectionWeight!)) }
        if inProjectionBias != nil { paths.append(("in_proj_bias", \.inProjectionBias!)) }
        if biasKey != nil { paths.append(("bias_k", \.biasKey!)) }
        if biasValue != nil { paths.append(("bias_v", \.biasValue!)) }
        return paths + parameterPaths(of: \.outProjection, prefixedBy: "out_proj")
    }

    /// Checks that the parameters (public and mutable) still have the shapes the options imply.
    func validateParameters() throws(AttentionError) {
        let e = embedDim
        func check(_ tensor: Tensor?, _ name: String, _ shape: [Int]?) throws(AttentionError) {
            switch (tensor, shape) {
            case (nil, nil): return
            case let (tensor?, shape?) where tensor.shape == shape: return
            case let (tensor?, nil):
                throw .shapeMismatch(
                    argument: name, expected: "nil for embedDim \(e), keyDim \(keyDim), valueDim \(valueDim)",
                    actual: tensor.shape)
            case let (tensor?, shape?):
                throw .shapeMismatch(argument: name, expected: "\(shape)", actual: tensor.shape)
            case let (nil, shape?):
                throw .invalidArgument(
                    argument: name,
                    reason: "must be a tensor of shape \(shape) for embedDim \(e), keyDim \(keyDim), valueDim \(valueDim), got nil")
            }
        }
        let packed = usesPackedInProjection
        try check(inProjectionWeight, "inProjectionWeight", packed ? [3 * e, e] : nil)
        try check(queryProjectionWeight, "queryProjectionWeight", packed ? nil : [e, e])
        try check(keyProjectionWeight, "keyProjectionWeight", packed ? nil : [e, keyDim])
        try check(valueProjectionWeight, "valueProjectionWeight", packed ? nil : [e, valueDim])
        try check(inProjectionBias, "inProjectionBias", inProjectionBias == nil ? nil : [3 * e])
        try check(outProjection.weight, "outProjection.weight", [e, e])
        try check(outProjection.bias, "outProjection.bias", outProjection.bias == nil ? nil : [e])
        guard (biasKey == nil) == (biasValue == nil) else {
            throw .invalidArgument(
                argument: biasKey == nil ? "biasKey" : "biasValue",
                reason: "bias_k and bias_v must both be set or both be nil")
        }
        try check(biasKey, "biasKey", biasKey == nil ? nil : [1, 1, e])
        try check(biasValue, "biasValue", biasValue == nil ? nil : [1, 1, e])
        guard dropout >= 0, dropout < 1 else {
            throw .invalidArgument(argument: "dropout", reason: "must be in [0, 1), got \(dropout)")
        }
    }

    /// Multi-head attention of `query` over `key` and `value`, PyTorch's
    /// `MultiheadAttention.forward` (its slow path, which its fast path matches).
    ///
    /// ```swift
    /// // Batched cross-attention, (L, N, E) layout, a bool key padding mask (true = padding)
    /// let memoryPadding = try TorchMask.disallowed(BooleanMask(shape: [2, 6]) { $0[0] == 1 && $0[1] >= 4 })
    /// let (out, weights) = try mha(query: q, key: memory, value: memory, keyPaddingMask: memoryPadding)
    /// // out (L, 2, E), weights (2, L, 6) averaged over heads
    /// let (perHead, all) = try mha(query: q, key: memory, value: memory, averageAttentionWeights: false)
    /// // all (2, H, L, 6)
    /// ```
    ///
    /// Shapes (with L the query length, S the key length, N the batch):
    ///
    /// | argument        | unbatched     | batched                                           |
    /// |-----------------|---------------|---------------------------------------------------|
    /// | `query`         | (L, E)        | (L, N, E), or (N, L, E) with ``batchFirst``       |
    /// | `key`           | (S, kdim)     | (S, N, kdim), or (N, S, kdim)                     |
    /// | `value`         | (S, vdim)     | (S, N, vdim), or (N, S, vdim)                     |
    /// | `keyPaddingMask`| (S)           | (N, S)                                            |
    /// | `attentionMask` | (L, S) or (H, L, S) | (L, S) or (N·H, L, S); also (N or 1, H or 1, L, S) |
    /// | output          | (L, E)        | as `query`                                        |
    /// | weights         | (L, S′) averaged or (H, L, S′) | (N, L, S′) or (N, H, L, S′)       |
    ///
    /// where S′ = S + 1 with ``biasKey`` + 1 with ``addZeroAttention``. The rank-4 attention mask
    /// is an extension (PyTorch rejects it): any mask broadcastable to (N, H, L, S) that way.
    ///
    /// Semantics, as PyTorch:
    /// - `keyPaddingMask` marks keys to ignore (``TorchMask/disallowed(_:)``: `true` = ignore)
    ///   or is added to the scores (``TorchMask/additive(_:)``); `attentionMask` likewise per
    ///   query and key. Both are padded with "attend" columns for the appended keys, and added.
    /// - `isCausal` is PyTorch's hint that `attentionMask` is causal: it requires the mask (or
    ///   throws, like PyTorch's `RuntimeError`); with `needWeights: false` and no key padding
    ///   mask the mask is then ignored and the kernel's own causal mask (`tril(ones(L, S′))`)
    ///   is used; otherwise the mask is used.
    /// - `needWeights: true` (the default) returns the weights; a query row with every key masked
    ///   gives NaN weights and a NaN output row (a plain softmax over `-inf`).
    ///   `needWeights: false` returns `nil` weights and runs the fused kernel; a fully masked row's
    ///   output is `out_proj.bias` (PyTorch ≥ 2.5's SDPA, zeros before the output projection).
    /// - In `training` with ``dropout`` > 0 the attention weights are dropped out (and the returned
    ///   weights are the dropped-out ones), from `dropoutSeed`: the same seed drops the same
    ///   weights on both paths. Out of training there is no dropout.
    ///
    /// - Throws: `AttentionError.shapeMismatch` naming `"query"`, `"key"`, `"value"`,
    ///   `"keyPaddingMask"` or `"attentionMask"` for PyTorch's shape errors (wrong ranks,
    ///   embedding width, `key`/`value` shapes, batch sizes, mask shapes), or a parameter
    ///   changed to a wrong shape; `.invalidArgument` (`"isCausal"`) for `isCausal` without an
    ///   attention mask, (`"key"`) for no key at all; the kernels' errors.
    public func callAsFunction(
        query: Tensor, key: Tensor, value: Tensor, keyPaddingMask: TorchMask? = nil, needWeights: Bool = true,
        attentionMask: TorchMask? = nil, averageAttentionWeights: Bool = true, isCausal: Bool = false,
        training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> (output: Tensor, weights: Tensor?) {
        try forward(
            query: query, key: key, value: value, keyPaddingMask: keyPaddingMask, needWeights: needWeights,
            attentionMask: attentionMask, averageAttentionWeights: averageAttentionWeights,
            causal: .hint(isCausal), maskedRows: .zero,
            dropout: training && dropout > 0 ? Dropout(probability: dropout, seed: dropoutSeed) : nil)
    }

    /// How `isCausal` combines with the attention mask.
    enum CausalMasking {
        /// PyTorch: a hint that the attention mask is causal (see `callAsFunction`).
        case hint(Bool)
        /// noxton / Equinox: causal masking in addition to the mask (their `mask & tril`); no
        /// mask needed. Only with `needWeights: false`.
        case combined(Bool)
    }

    /// The forward pass with the choices the encoder layers need: how `isCausal` works, what a
    /// fully masked row gives on the fused path, and the dropout (already resolved from training).
    func forward(
        query: Tensor, key: Tensor, value: Tensor, keyPaddingMask: TorchMask?, needWeights: Bool,
        attentionMask: TorchMask?, averageAttentionWeights: Bool, causal: CausalMasking,
        maskedRows: MaskedRowPolicy, dropout: Dropout?
    ) throws -> (output: Tensor, weights: Tensor?) {
        typealias Kernels = TorchAttentionKernels
        try validateParameters()
        let e = embedDim

        // _mha_shape_check: ranks, and the unbatched 3-D mask.
        let batched: Bool
        switch query.rank {
        case 3: batched = true
        case 2: batched = false
        default:
            throw AttentionError.shapeMismatch(
                argument: "query",
                expected: "unbatched 2-D (L, E) or batched 3-D \(batchFirst ? "(N, L, E)" : "(L, N, E)")",
                actual: query.shape)
        }
        let kind = batched ? "batched (3-D)" : "unbatched (2-D)"
        for (name, tensor) in [("key", key), ("value", value)] where tensor.rank != query.rank {
            throw AttentionError.shapeMismatch(
                argument: name, expected: "\(query.rank)-D, as the \(kind) query \(query.shape)", actual: tensor.shape)
        }
        if let keyPaddingMask, keyPaddingMask.shape.count != (batched ? 2 : 1) {
            throw AttentionError.shapeMismatch(
                argument: "keyPaddingMask", expected: batched ? "2-D (N, S) for a batched query" : "1-D (S) for an unbatched query",
                actual: keyPaddingMask.shape)
        }
        let (batch, length) = batched ? (batchFirst ? (query.shape[0], query.shape[1]) : (query.shape[1], query.shape[0]))
                                      : (1, query.shape[0])
        let (keyBatch, keyLength) = batched ? (batchFirst ? (key.shape[0], key.shape[1]) : (key.shape[1], key.shape[0]))
                                            : (1, key.shape[0])
        if let attentionMask {
            let rank = attentionMask.shape.count
            guard rank == 2 || rank == 3 || (batched && rank == 4) else {
                throw AttentionError.shapeMismatch(
                    argument: "attentionMask",
                    expected: batched ? "2-D (L, S), 3-D (N·H, L, S) or 4-D (N or 1, H or 1, L, S)" : "2-D (L, S) or 3-D (H, L, S)",
                    actual: attentionMask.shape)
            }
            if !batched && rank == 3 && attentionMask.shape != [heads, length, keyLength] {
                throw AttentionError.shapeMismatch(
                    argument: "attentionMask", expected: "[\(heads), \(length), \(keyLength)] (H, L, S)",
                    actual: attentionMask.shape)
            }
        }

        // is_causal: a hint that requires the mask; the causal kernel replaces the mask when
        // neither weights nor a key padding mask need it.
        var attentionMask = attentionMask
        var causalKernel = false
        switch causal {
        case .hint(true):
            guard attentionMask != nil else {
                throw AttentionError.invalidArgument(
                    argument: "isCausal",
                    reason: "Need attn_mask if specifying the is_causal hint. You may use "
                        + "TorchMask.squareSubsequent(_:) (generate_square_subsequent_mask) to create this mask.")
            }
            if keyPaddingMask == nil && !needWeights {
                attentionMask = nil
                causalKernel = true
            }
        case .hint(false):
            break
        case let .combined(isCausal):
            guard !(isCausal && needWeights) else {
                throw AttentionError.invalidArgument(
                    argument: "needWeights", reason: "causal masking combined with the mask runs on the fused path only")
            }
            causalKernel = isCausal
        }

        // Widths, key/value agreement, batch sizes.
        guard query.shape[query.rank - 1] == e else {
            throw AttentionError.shapeMismatch(
                argument: "query", expected: "last dimension \(e): was expecting embedding dimension of \(e)",
                actual: query.shape)
        }
        if usesPackedInProjection {
            guard key.shape == value.shape else {
                throw AttentionError.shapeMismatch(
                    argument: "value", expected: "\(key.shape), the key's shape", actual: value.shape)
            }
        } else {
            guard key.shape.dropLast() == value.shape.dropLast() else {
                throw AttentionError.shapeMismatch(
                    argument: "value",
                    expected: "the key's sequence and batch dimensions \(Array(key.shape.dropLast()))",
                    actual: value.shape)
            }
        }
        guard key.shape[key.rank - 1] == keyDim else {
            throw AttentionError.shapeMismatch(
                argument: "key", expected: "last dimension \(keyDim) (kdim)", actual: key.shape)
        }
        guard value.shape[value.rank - 1] == valueDim else {
            throw AttentionError.shapeMismatch(
                argument: "value", expected: "last dimension \(valueDim) (vdim)", actual: value.shape)
        }
        guard keyBatch == batch else {
            throw AttentionError.shapeMismatch(
                argument: "key", expected: "batch size \(batch), the query's", actual: key.shape)
        }

        // Mask shapes against L and S.
        if let attentionMask {
            let shape = attentionMask.shape
            let fits = switch shape.count {
            case 2: shape == [length, keyLength]
            case 3: shape == [batch * heads, length, keyLength]
            default: (shape[0] == 1 || shape[0] == batch) && (shape[1] == 1 || shape[1] == heads)
                && shape[2] == length && shape[3] == keyLength
            }
            guard fits else {
                let expected = switch shape.count {
                case 2: "[\(length), \(keyLength)] (L, S)"
                case 3: "[\(batch * heads), \(length), \(keyLength)] (N·H, L, S)"
                default: "[\(batch) or 1, \(heads) or 1, \(length), \(keyLength)] (N, H, L, S)"
                }
                throw AttentionError.shapeMismatch(argument: "attentionMask", expected: expected, actual: shape)
            }
        }
        if let keyPaddingMask {
            let expected = batched ? [batch, keyLength] : [keyLength]
            guard keyPaddingMask.shape == expected else {
                throw AttentionError.shapeMismatch(
                    argument: "keyPaddingMask", expected: batched ? "\(expected) (N, S)" : "\(expected) (S)",
                    actual: keyPaddingMask.shape)
            }
        }
        let appended = (biasKey == nil ? 0 : 1) + (addZeroAttention ? 1 : 0)
        let extendedLength = keyLength + appended
        guard extendedLength >= 1 else {
            throw AttentionError.invalidArgument(argument: "key", reason: "has no positions (S = 0) and nothing is appended")
        }
        let outputShape = batched ? query.shape : [length, e]
        if batch == 0 || length == 0 {
            let weightShape = averageAttentionWeights ? [batch, length, extendedLength] : [batch, heads, length, extendedLength]
            return (try Tensor(zeros: outputShape),
                    needWeights ? try Tensor(zeros: batched ? weightShape : Array(weightShape.dropFirst())) : nil)
        }

        // Batch-major inputs (N, L, E); identity (self-attention) survives the transposes.
        let selfAttention = query.storage === key.storage && key.storage === value.storage
            && query.shape == key.shape && key.shape == value.shape
        let keyIsValue = key.storage === value.storage && key.shape == value.shape
        func batchMajor(_ tensor: Tensor) throws -> Tensor {
            if !batched { return try tensor.reshaped([1] + tensor.shape) }
            return batchFirst ? tensor : try tensor.permuted([1, 0, 2])
        }
        let q = try batchMajor(query)
        let k = selfAttention ? q : try batchMajor(key)
        let v = keyIsValue ? k : try batchMajor(value)

        // In-projection: one matmul for self-attention, key and value together when they are one
        // tensor, read in place by the attention.
        var queryView: StridedHeads, keyView: StridedHeads, valueView: StridedHeads
        let bias = inProjectionBias
        let d = e / heads
        /// `width` features of each row of `tensor` starting at column `offset`, as the heads.
        func view(_ tensor: Tensor, length: Int, rowWidth: Int, offset: Int = 0) -> StridedHeads {
            StridedHeads(rows: tensor, batch: batch, length: length, rowWidth: rowWidth, offset: offset, heads: heads, dim: d)
        }
        func project(_ x: Tensor, _ weight: Tensor, rows: Range<Int>, biasOffset: Int) throws -> Tensor {
            try projectLastAxis(x, weight: weight, layout: .outputsByInputs, bias: bias, rows: rows, biasOffset: biasOffset)
        }
        if let packed = inProjectionWeight {
            if selfAttention {
                let qkv = try project(q, packed, rows: 0..<(3 * e), biasOffset: 0)
                queryView = view(qkv, length: length, rowWidth: 3 * e)
                keyView = view(qkv, length: length, rowWidth: 3 * e, offset: e)
                valueView = view(qkv, length: length, rowWidth: 3 * e, offset: 2 * e)
            } else {
                queryView = view(try project(q, packed, rows: 0..<e, biasOffset: 0), length: length, rowWidth: e)
                if keyIsValue {
                    let kv = try project(k, packed, rows: e..<(3 * e), biasOffset: e)
                    keyView = view(kv, length: keyLength, rowWidth: 2 * e)
                    valueView = view(kv, length: keyLength, rowWidth: 2 * e, offset: e)
                } else {
                    keyView = view(try project(k, packed, rows: e..<(2 * e), biasOffset: e), length: keyLength, rowWidth: e)
                    valueView = view(
                        try project(v, packed, rows: (2 * e)..<(3 * e), biasOffset: 2 * e), length: keyLength, rowWidth: e)
                }
            }
        } else {
            queryView = view(try project(q, queryProjectionWeight!, rows: 0..<e, biasOffset: 0), length: length, rowWidth: e)
            keyView = view(try project(k, keyProjectionWeight!, rows: 0..<e, biasOffset: e), length: keyLength, rowWidth: e)
            valueView = view(
                try project(v, valueProjectionWeight!, rows: 0..<e, biasOffset: 2 * e), length: keyLength, rowWidth: e)
        }

        // add_bias_kv, then add_zero_attn.
        if appended > 0 {
            keyView = try Kernels.appending(keyView, bias: biasKey, zero: addZeroAttention)
            valueView = try Kernels.appending(valueView, bias: biasValue, zero: addZeroAttention)
        }

        // Masks, padded with attending columns for the appended keys, in broadcastable form.
        let attention = try attentionMask.map { mask in
            let shape = mask.shape
            let (maskBatch, maskHeads) = switch shape.count {
            case 2: (1, 1)
            case 3: (batch, heads)
            default: (shape[0], shape[1])
            }
            return try Kernels.CanonicalMask(
                mask, batch: maskBatch, heads: maskHeads, rows: length, columns: extendedLength, padding: appended)
        }
        let keyPadding = try keyPaddingMask.map {
            try Kernels.CanonicalMask($0, batch: batch, heads: 1, rows: 1, columns: extendedLength, padding: appended)
        }

        var output: Tensor, weights: Tensor?
        if needWeights {
            let result = try Kernels.attentionWithWeights(
                query: queryView, key: keyView, value: valueView,
                attentionMask: attention, keyPadding: keyPadding, dropout: dropout)
            output = try outProjection(result.output)
            weights = averageAttentionWeights ? try Kernels.meanOverHeads(result.weights) : result.weights
        } else {
            let mask = try Kernels.kernelMask(causal: causalKernel, attention: attention, keyPadding: keyPadding)
            let attended = try Kernels.fusedAttention(
                query: queryView, key: keyView, value: valueView, mask: mask, dropout: dropout, maskedRows: maskedRows)
            output = try outProjection(attended)
            weights = nil
        }

        if !batched {
            output = try output.reshaped(outputShape)
            weights = try weights.map { try $0.reshaped(Array($0.shape.dropFirst())) }
        } else if !batchFirst {
            output = try output.permuted([1, 0, 2])
        }
        return (output, weights)
    }
}
