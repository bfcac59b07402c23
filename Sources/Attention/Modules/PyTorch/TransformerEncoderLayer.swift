/// PyTorch's `torch.nn.TransformerEncoderLayer` (and, with ``Convention/noxton``, noxton's):
/// self-attention and a feed-forward network, each with a residual connection and a layer norm,
/// after the block (post-norm, PyTorch's default) or before it (pre-norm, `normFirst`).
///
/// ```
/// post-norm:  x = norm1(x + sa(x));         x = norm2(x + ff(x))
/// pre-norm:   x = x + sa(norm1(x));         x = x + ff(norm2(x))
/// sa(x) = dropout1(self_attn(x, x, x, mask, key padding mask, need_weights: false))
/// ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))
/// ```
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let layer = try TransformerEncoderLayer(dModel: 512, heads: 8, batchFirst: true, using: &rng)
/// let x = try Tensor(randomNormal: [2, 10, 512], using: &rng)        // (N, L, E)
/// let padding = try TorchMask.disallowed(BooleanMask(shape: [2, 10]) { $0[0] == 1 && $0[1] >= 7 })
/// let y = try layer(x, keyPaddingMask: padding)                        // (2, 10, 512)
/// ```
///
/// ## Names
///
/// | PyTorch                                      | Swift                                          |
/// |----------------------------------------------|------------------------------------------------|
/// | `d_model`                                    | `dModel:` (``dModel``)                         |
/// | `nhead`                                      | `heads:` (``heads``)                           |
/// | `dim_feedforward` (2048)                     | `feedForwardSize:` (``feedForwardSize``)       |
/// | `dropout` (0.1)                              | `dropout:` (``dropout``, and the attention's)  |
/// | `activation` (`"relu"`, `"gelu"` = exact erf, or a callable) | ``activation`` (`.relu`, `.gelu`, or any ``Activation``) |
/// | `layer_norm_eps` (1e-5)                      | `layerNormEpsilon:` (`norm1.epsilon`, `norm2.epsilon`) |
/// | `batch_first`                                | `batchFirst:` (``batchFirst``)                 |
/// | `norm_first`                                 | `normFirst:` (``normFirst``)                   |
/// | `bias`                                       | `bias:`                                        |
/// | `self_attn`, `linear1`, `linear2`, `norm1`, `norm2` | ``selfAttention``, ``linear1``, ``linear2``, ``norm1``, ``norm2`` (same `state_dict` names) |
/// | `forward(src, src_mask, src_key_padding_mask, is_causal)` | ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)`` |
/// | `module.train()` / `.eval()`, the global RNG | `training:` (`false`: eval), `dropoutSeed:`    |
///
/// noxton's layer maps to the same arguments with `convention: .noxton` (see ``Convention`` for
/// what that changes): `d_model` → `dModel:`, `n_heads` → `heads:`, `dim_feedforward` →
/// `feedForwardSize:`, `dropout_p` → `dropout:`, `activation` (`jax.nn.relu`, `jax.nn.gelu`
/// with `approximate=False` → `.gelu`, its default tanh form → `.geluTanh`) → `activation:`,
/// `layer_norm_eps` → `layerNormEpsilon:`, `norm_first` (default `True`) → `normFirst:`,
/// `use_bias` → `bias:`; at the call, `attn_mask` (`True` = attend) → `mask: .allowed(...)`,
/// `is_causal` → `isCausal:`, `inference=True` → `training: false`, the dropout `key` →
/// `dropoutSeed:`. noxton layers are unbatched (`jax.vmap` for batches); here `(N, L, E)` with
/// `batchFirst: true` does the same, with per-example masks as `(N, 1, L, L)`.
public struct TransformerEncoderLayer: ParameterizedModule, Equatable, TorchTransformerLayer {
    /// The self-attention (`self_attn`), a packed ``TorchMultiheadAttention``; its ``TorchMultiheadAttention/dropout``
    /// is the attention-weight dropout.
    public var selfAttention: TorchMultiheadAttention

    /// The feed-forward network's first layer, `(dim_feedforward, d_model)` (`linear1`).
    public var linear1: Linear

    /// The feed-forward network's second layer, `(d_model, dim_feedforward)` (`linear2`).
    public var linear2: Linear

    /// The layer norm around the self-attention block (`norm1`).
    public var norm1: LayerNorm

    /// The layer norm around the feed-forward block (`norm2`).
    public var norm2: LayerNorm

    /// The feed-forward activation (`activation`): `.relu` by default, `.gelu` for PyTorch's
    /// `"gelu"` (the exact erf form).
    public var activation: Activation

    /// The dropout probability of `dropout`, `dropout1` and `dropout2` in training, in `[0, 1)`.
    public var dropout: Float

    /// Pre-norm (`true`) or post-norm (`false`, PyTorch's default) (`norm_first`).
    public var normFirst: Bool

    /// Whose layer this reproduces: parameter names, initialisation, `isCausal` and fully masked
    /// rows (see ``Convention``).
    public var convention: Convention

    /// The model width E (`d_model`).
    public var dModel: Int { selfAttention.embedDim }

    /// The number of attention heads (`nhead`).
    public var heads: Int { selfAttention.heads }

    /// The feed-forward width (`dim_feedforward`).
    public var feedForwardSize: Int { linear1.outputSize }

    /// Whether batched inputs are `(N, L, E)` rather than `(L, N, E)` (`batch_first`, stored on the
    /// self-attention as in PyTorch).
    public var batchFirst: Bool {
        get { selfAttention.batchFirst }
        set { selfAttention.batchFirst = newValue }
    }

    /// Creates a layer initialised as PyTorch initialises `TransformerEncoderLayer` (or, with
    /// `convention: .noxton`, as noxton does): the self-attention as ``TorchMultiheadAttention``
    /// (noxton: four `eqx.nn.Linear` projections), `linear1` and `linear2` from `U(±1/√fanIn)`,
    /// layer norms with weight 1 and bias 0. Drawn in that order.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 3)
    /// let preNorm = try TransformerEncoderLayer(
    ///     dModel: 256, heads: 4, feedForwardSize: 1024, dropout: 0, activation: .gelu, normFirst: true, using: &rng)
    /// ```
    ///
    /// - Parameters:
    ///   - dModel: E, at least 1.
    ///   - heads: H, dividing E.
    ///   - feedForwardSize: the hidden width of the feed-forward network; 2048 by default.
    ///   - dropout: dropout probability in training, in `[0, 1)`; 0.1 by default.
    ///   - activation: `.relu` (default) or `.gelu` (exact), or any ``Activation``.
    ///   - layerNormEpsilon: the layer norms' epsilon; 1e-5 by default.
    ///   - batchFirst: `(N, L, E)` batched inputs.
    ///   - normFirst: pre-norm instead of post-norm.
    ///   - bias: whether the projections, linear layers and layer norms have biases.
    ///   - convention: ``Convention/torch`` (default) or ``Convention/noxton``.
    ///   - generator: draws the weights as PyTorch's initialisation does.
    /// - Throws: `AttentionError.invalidArgument` for a size below 1 (`"dModel"`, `"heads"`,
    ///   `"feedForwardSize"`), E not divisible by H (`"heads"`), a dropout outside `[0, 1)`
    ///   (`"dropout"`) or an invalid epsilon (`"epsilon"`).
    public init(
        dModel: Int, heads: Int, feedForwardSize: Int = 2048, dropout: Float = 0.1, activation: Activation = .relu,
        layerNormEpsilon: Float = 1e-5, batchFirst: Bool = false, normFirst: Bool = false, bias: Bool = true,
        convention: Convention = .torch, using generator: inout some RandomNumberGenerator
    ) throws {
        guard dModel >= 1 else {
            throw AttentionError.invalidArgument(argument: "dModel", reason: "must be at least 1, got \(dModel)")
        }
        guard feedForwardSize >= 1 else {
            throw AttentionError.invalidArgument(
                argument: "feedForwardSize", reason: "must be at least 1, got \(feedForwardSize)")
        }
        switch convention {
        case .torch:
            selfAttention = try TorchMultiheadAttention(
                embedDim: dModel, heads: heads, dropout: dropout, bias: bias, batchFirst: batchFirst, using: &generator)
        case .noxton:
            selfAttention = try .equinoxInitialized(
                embedDim: dModel, heads: heads, dropout: dropout, bias: bias, batchFirst: batchFirst, using: &generator)
        }
        linear1 = try Linear(inputSize: dModel, outputSize: feedForwardSize, bias: bias, using: &generator)
        linear2 = try Linear(inputSize: feedForwardSize, outputSize: dModel, bias: bias, using: &generator)
        norm1 = try LayerNorm(size: dModel, epsilon: layerNormEpsilon, bias: bias)
        norm2 = try LayerNorm(size: dModel, epsilon: layerNormEpsilon, bias: bias)
        self.activation = activation
        self.dropout = dropout
        self.normFirst = normFirst
        self.convention = convention
    }

    /// The attention's projection weights and `linear1.weight`, `linear2.weight`.
    public var matrixWeightNames: Set<String> {
        (convention == .torch ? matrixWeightNames(of: \.selfAttention, prefixedBy: "self_attn") : noxtonMatrixWeightNames)
            .union(matrixWeightNames(of: \.linear1, prefixedBy: "linear1"))
            .union(matrixWeightNames(of: \.linear2, prefixedBy: "linear2"))
    }

    /// PyTorch's `state_dict` names (`self_attn.in_proj_weight`, `self_attn.in_proj_bias`,
    /// `self_attn.out_proj.weight`, ..., `linear1.weight`, ..., `norm2.bias`), or noxton's with
    /// ``Convention/noxton`` (`self_attn.query_proj.weight`, ..., `self_attn.output_proj.bias`,
    /// then the same `linear1`, `linear2`, `norm1`, `norm2`).
    public var parameterPaths: [ParameterPath<TransformerEncoderLayer>] {
        let attention = convention == .torch
            ? parameterPaths(of: \.selfAttention, prefixedBy: "self_attn") : noxtonAttentionPaths
        return attention
            + parameterPaths(of: \.linear1, prefixedBy: "linear1") + parameterPaths(of: \.linear2, prefixedBy: "linear2")
            + parameterPaths(of: \.norm1, prefixedBy: "norm1") + parameterPaths(of: \.norm2, prefixedBy: "norm2")
    }

    /// Runs the layer on `source`: `(L, E)` unbatched, or `(L, N, E)` / `(N, L, E)` with
    /// ``batchFirst``; the result has the same shape.
    ///
    /// ```swift
    /// let causal = try TorchMask.squareSubsequent(10)
    /// let y = try layer(x, mask: causal, isCausal: true)                      // eval: no dropout
    /// let trained = try layer(x, mask: causal, training: true, dropoutSeed: 42)
    /// ```
    ///
    /// - Parameters:
    ///   - source: `src`, `(L, E)` unbatched, `(N, L, E)` with `batchFirst`, `(L, N, E)` otherwise.
    ///   - mask: `src_mask`, `(L, L)` or `(N·H, L, L)` (also `(N or 1, H or 1, L, L)`), in any
    ///     ``TorchMask`` form.
    ///   - keyPaddingMask: `src_key_padding_mask`, `(L)` unbatched or `(N, L)`.
    ///   - isCausal: PyTorch's hint that `mask` is causal (``Convention/torch``), or causal
    ///     masking in addition to `mask` (``Convention/noxton``).
    ///   - training: `true` applies dropout (PyTorch's `train()` mode); `false` (default) is eval.
    ///   - dropoutSeed: the seed of all the layer's dropout (each site draws from its own stream).
    /// - Throws: `AttentionError.shapeMismatch` (`"source"`, `"mask"`, `"keyPaddingMask"`) for
    ///   shapes that do not fit, `.invalidArgument` (`"isCausal"`) for PyTorch's is_causal without
    ///   a mask, (`"dropout"`) for a probability outside `[0, 1)`; the parameters' and kernels'
    ///   errors.
    public func callAsFunction(
        _ source: Tensor, mask: TorchMask? = nil, keyPaddingMask: TorchMask? = nil, isCausal: Bool = false,
        training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> Tensor {
        try checkInputs(source, mask: mask, keyPaddingMask: keyPaddingMask)
        let call = TransformerLayerCall(training: training, dropoutSeed: dropoutSeed)
        func selfAttentionBlock(_ x: Tensor) throws -> Tensor {
            try selfAttention.transformerBlock(
                query: x, memory: x, mask: mask, keyPaddingMask: keyPaddingMask,
                causal: convention == .torch ? .hint(isCausal) : .combined(isCausal),
                maskedRows: convention == .torch ? .zero : .meanOfValues, call: call,
                sites: (.selfAttentionWeights, .selfAttentionOutput), outputDropout: dropout,
                names: ["attentionMask": "mask"])
        }
        let x = try residual(source, norm: norm1, selfAttentionBlock)
        return try residual(x, norm: norm2) { try feedForwardBlock($0, call) }
    }

    /// The checks of a call: dtypes, and the source's rank and width.
    func checkInputs(_ source: Tensor, mask: TorchMask?, keyPaddingMask: TorchMask?) throws {
        try requireFloat32Parameters()
        try requireFloat32Activations(["source": source])
        try mask?.requireFloat32("mask")
        try keyPaddingMask?.requireFloat32("keyPaddingMask")
        guard (source.rank == 2 || source.rank == 3), source.shape[source.rank - 1] == dModel else {
            throw AttentionError.shapeMismatch(
                argument: "source",
                expected: "(L, \(dModel)) or \(batchFirst ? "(N, L, \(dModel))" : "(L, N, \(dModel))")",
                actual: source.shape)
        }
    }
}

extension TransformerEncoderLayer: Layer {
    /// The layer without masks, in evaluation mode: as `callAsFunction(source, mask: nil)`.
    ///
    /// - Throws: as ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)``.
    public func callAsFunction(_ source: Tensor) throws -> Tensor {
        try callAsFunction(source, mask: nil)
    }
}
