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
/// ``convention`` `.noxton` loads and saves them so.
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
    public let embedDim: Int

    /// The number of heads H (`num_heads`); `embedDim` is a multiple of it.
    public let heads: Int

    /// The key's last dimension (`kdim`); `embedDim` unless given.
    public let keyDim: Int

    /// The value's last dimension (`vdim`); `embedDim` unless given.
    public let valueDim: Int

    /// The dropout probability on the attention weights in training, in `[0, 1)` (`dropout`).
    public var dropout: Float

    /// Whether a zero key and a zero value are appended after the (projected) keys and values, and
    /// after ``biasKey``/``biasValue`` (`add_zero_attn`).
    public var addZeroAttention: Bool

    /// Whether batched inputs and outputs are `(N, L, E)` (`true`) or `(L, N, E)` (`false`, the
    /// default, as PyTorch) (`batch_first`). Unbatched `(L, E)` inputs ignore it.
    public var batchFirst: Bool

    /// The packed query, key and value projection weights `(3E, E)`, rows `[0, E)` for the query,
    /// `[E, 2E)` for the key and `[2E, 3E)` for the value (`in_proj_weight`). Present exactly when
    /// ``usesPackedInProjection``.
    public var inProjectionWeight: Tensor?

    /// The query projection weight `(E, E)` when the key or value width differs from E
    /// (`q_proj_weight`).
    public var queryProjectionWeight: Tensor?

    /// The key projection weight `(E, kdim)` when the key or value width differs from E
    /// (`k_proj_weight`).
    public var keyProjectionWeight: Tensor?

    /// The value projection weight `(E, vdim)` when the key or value width differs from E
    /// (`v_proj_weight`).
    public var valueProjectionWeight: Tensor?

    /// The query, key and value projection biases `(3E,)`, in that order, with packed and with
    /// separate weights alike (`in_proj_bias`); `nil` with `bias: false`.
    public var inProjectionBias: Tensor?

    /// The output projection `(E, E)` with its bias `(E,)` (`out_proj`).
    public var outProjection: Linear

    /// The key appended to the projected keys of every batch, `(1, 1, E)` (`bias_k`); `nil`
    /// unless `addBiasKV`.
    public var biasKey: Tensor?

    /// The value appended to the projected values of every batch, `(1, 1, E)` (`bias_v`); `nil`
    /// unless `addBiasKV`.
    public var biasValue: Tensor?

    /// Whose checkpoint layout ``parameterPaths`` follows: PyTorch's (the default) or noxton's.
    ///
    /// The two share every name; they differ only in the shape of `bias_k` and `bias_v`, which
    /// PyTorch stores as `(1, 1, E)` and noxton's `noxton.nn.MultiheadAttention` as `(1, E)`.
    /// ``biasKey`` and ``biasValue`` stay `(1, 1, E)` either way, and the forward pass is the same.
    ///
    /// ```swift
    /// // noxton.nn.MultiheadAttention(8, 2, add_bias_kv=True), saved from its pytree
    /// var mha = try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, using: &rng)
    /// mha.convention = .noxton
    /// try mha.loadParameters(from: SafeTensors(contentsOf: url))   // bias_k (1, 8)
    /// mha.convention = .torch
    /// try mha.saveParameters(to: torchURL)                         // bias_k (1, 1, 8), as a state_dict
    /// ```
    public enum Convention: String, Sendable, Equatable, Hashable, CaseIterable {
        /// `torch.nn.MultiheadAttention`: `bias_k` and `bias_v` are `(1, 1, E)`.
        case torch
        /// `noxton.nn.MultiheadAttention`: `bias_k` and `bias_v` are `(1, E)`.
        case noxton
    }

    /// The checkpoint layout of the parameters, ``Convention/torch`` unless set.
    ///
    /// ```swift
    /// var mha = try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, using: &rng)
    /// mha.convention = .noxton
    /// mha.parameterShapes.first { $0.name == "bias_k" }?.shape   // [1, 8]
    /// ```
    public var convention: Convention = .torch

    /// The size of each head, `embedDim / heads` (`head_dim`).
    public var headDim: Int { embedDim / heads }

    /// Whether the key and value widths equal `embedDim`, so the three projection weights are
    /// packed in ``inProjectionWeight`` (PyTorch's `_qkv_same_embed_dim`).
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
    ///   - generator: draws the weights as PyTorch's initialisation does.
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
        // The largest parameter, the packed (3E, E) in-projection, must be addressable.
        _ = try elementCount(of: [3, embedDim, Swift.max(embedDim, keyDim, valueDim)], argument: "embedDim")
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

    /// The projection weights: `in_proj_weight` (or `q_proj_weight`, `k_proj_weight`,
    /// `v_proj_weight`) and `out_proj.weight`.
    public var matrixWeightNames: Set<String> {
        Set(["in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"])
            .union(matrixWeightNames(of: \.outProjection, prefixedBy: "out_proj"))
    }

    /// PyTorch's `state_dict` names, in its order: `in_proj_weight` (or `q_proj_weight`,
    /// `k_proj_weight`, `v_proj_weight`), `in_proj_bias`, `bias_k`, `bias_v`, `out_proj.weight`,
    /// `out_proj.bias`, each when present; `bias_k` and `bias_v` shaped as ``convention`` says.
    public var parameterPaths: [ParameterPath<TorchMultiheadAttention>] {
        var paths: [ParameterPath<TorchMultiheadAttention>] = []
        if inProjectionWeight != nil { paths.append(ParameterPath("in_proj_weight", \.inProjectionWeight!)) }
        if queryProjectionWeight != nil { paths.append(ParameterPath("q_proj_weight", \.queryProjectionWeight!)) }
        if keyProjectionWeight != nil { paths.append(ParameterPath("k_proj_weight", \.keyProjectionWeight!)) }
        if valueProjectionWeight != nil { paths.append(ParameterPath("v_proj_weight", \.valueProjectionWeight!)) }
        if inProjectionBias != nil { paths.append(ParameterPath("in_proj_bias", \.inProjectionBias!)) }
        let biasShape = convention == .torch ? [1, 1, embedDim] : [1, embedDim]
        if biasKey != nil { paths.append(ParameterPath("bias_k", \.biasKey![storedAs: biasShape])) }
        if biasValue != nil { paths.append(ParameterPath("bias_v", \.biasValue![storedAs: biasShape])) }
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
}

extension Tensor {
    /// This tensor with the elements in `shape`, as a checkpoint stores it; writing reshapes the
    /// new value back to this tensor's shape. A reshape that cannot be done (element counts that
    /// differ) leaves the tensor as it is, so loading reports its shape as a mismatch.
    fileprivate subscript(storedAs shape: [Int]) -> Tensor {
        get { (try? reshaped(shape)) ?? self }
        set { self = (try? newValue.reshaped(self.shape)) ?? newValue }
    }
}
