/// PyTorch's `torch.nn.TransformerDecoderLayer`: self-attention over the target, cross-attention
/// from the target to the encoder's output (the memory), and a feed-forward network, each with a
/// residual connection and a layer norm, after the block (post-norm, PyTorch's default) or before
/// it (pre-norm, `normFirst`).
///
/// ```
/// post-norm:  x = norm1(x + sa(x));   x = norm2(x + mha(x, memory));   x = norm3(x + ff(x))
/// pre-norm:   x = x + sa(norm1(x));   x = x + mha(norm2(x), memory);   x = x + ff(norm3(x))
/// sa(x)     = dropout1(self_attn(x, x, x, tgt_mask, tgt_key_padding_mask, tgt_is_causal, need_weights: false))
/// mha(x, m) = dropout2(multihead_attn(x, m, m, memory_mask, memory_key_padding_mask, memory_is_causal, need_weights: false))
/// ff(x)     = dropout3(linear2(dropout(activation(linear1(x)))))
/// ```
///
/// The two attentions are ``TorchMultiheadAttention``s and the feed-forward network, residual
/// connections, norms and dropout are ``TransformerEncoderLayer``'s, so the layer computes what
/// PyTorch's does, option for option.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let layer = try TransformerDecoderLayer(dModel: 512, heads: 8, batchFirst: true, using: &rng)
/// let target = try Tensor(randomNormal: [2, 10, 512], using: &rng)     // (N, L, E)
/// let memory = try Tensor(randomNormal: [2, 16, 512], using: &rng)     // (N, S, E), the encoder's output
/// let y = try layer(target, memory: memory, targetMask: TorchMask.squareSubsequent(10), targetIsCausal: true)
/// ```
///
/// ## Names
///
/// | PyTorch                                      | Swift                                          |
/// |----------------------------------------------|------------------------------------------------|
/// | `d_model`, `nhead`, `dim_feedforward` (2048) | `dModel:`, `heads:`, `feedForwardSize:` (``dModel``, ``heads``, ``feedForwardSize``) |
/// | `dropout` (0.1)                              | `dropout:` (``dropout``, and both attentions') |
/// | `activation` (`"relu"`, `"gelu"` = exact erf, or a callable) | ``activation`` (`.relu`, `.gelu`, or any ``Activation``) |
/// | `layer_norm_eps` (1e-5)                      | `layerNormEpsilon:` (`norm1.epsilon`, ...)     |
/// | `batch_first`, `norm_first`, `bias`          | `batchFirst:`, `normFirst:`, `bias:` (``batchFirst``, ``normFirst``) |
/// | `self_attn`, `multihead_attn`                | ``selfAttention``, ``crossAttention``          |
/// | `linear1`, `linear2`, `norm1`, `norm2`, `norm3` | ``linear1``, ``linear2``, ``norm1``, ``norm2``, ``norm3`` |
/// | `forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal, memory_is_causal)` | ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)`` |
/// | `module.train()` / `.eval()`, the global RNG | `training:` (`false`: eval), `dropoutSeed:`    |
///
/// ``parameterPaths`` are PyTorch's `state_dict` names (`self_attn.in_proj_weight`, ...,
/// `multihead_attn.out_proj.bias`, `linear1.weight`, ..., `norm3.bias`), so a PyTorch checkpoint
/// loads directly.
public struct TransformerDecoderLayer: ParameterizedModule, Equatable, TorchTransformerLayer {
    /// The self-attention over the target (`self_attn`), a packed ``TorchMultiheadAttention``; its
    /// ``TorchMultiheadAttention/dropout`` is the attention-weight dropout.
    public var selfAttention: TorchMultiheadAttention

    /// The cross-attention from the target to the memory (`multihead_attn`).
    public var crossAttention: TorchMultiheadAttention

    /// The feed-forward network's first layer, `(dim_feedforward, d_model)` (`linear1`).
    public var linear1: Linear

    /// The feed-forward network's second layer, `(d_model, dim_feedforward)` (`linear2`).
    public var linear2: Linear

    /// The layer norm around the self-attention block (`norm1`).
    public var norm1: LayerNorm

    /// The layer norm around the cross-attention block (`norm2`).
    public var norm2: LayerNorm

    /// The layer norm around the feed-forward block (`norm3`).
    public var norm3: LayerNorm

    /// The feed-forward activation (`activation`): `.relu` by default, `.gelu` for PyTorch's
    /// `"gelu"` (the exact erf form).
    public var activation: Activation

    /// The dropout probability of `dropout`, `dropout1`, `dropout2` and `dropout3` in training, in
    /// `[0, 1)`.
    public var dropout: Float

    /// Pre-norm (`true`) or post-norm (`false`, PyTorch's default) (`norm_first`).
    public var normFirst: Bool

    /// The model width E (`d_model`).
    public var dModel: Int { selfAttention.embedDim }

    /// The number of attention heads (`nhead`).
    public var heads: Int { selfAttention.heads }

    /// The feed-forward width (`dim_feedforward`).
    public var feedForwardSize: Int { linear1.outputSize }

    /// Whether batched inputs are `(N, L, E)` rather than `(L, N, E)` (`batch_first`, stored on both
    /// attentions as in PyTorch).
    public var batchFirst: Bool {
        get { selfAttention.batchFirst }
        set { (selfAttention.batchFirst, crossAttention.batchFirst) = (newValue, newValue) }
    }

    /// Creates a layer initialised as PyTorch initialises `TransformerDecoderLayer`: each attention
    /// as ``TorchMultiheadAttention``, `linear1` and `linear2` from `U(±1/√fanIn)`, layer norms with
    /// weight 1 and bias 0. Drawn in that order.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 3)
    /// let preNorm = try TransformerDecoderLayer(
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
    ///   - generator: the source of the initial parameters.
    /// - Throws: `AttentionError.invalidArgument` for a size below 1 (`"dModel"`, `"heads"`,
    ///   `"feedForwardSize"`), E not divisible by H (`"heads"`), a dropout outside `[0, 1)`
    ///   (`"dropout"`) or an invalid epsilon (`"epsilon"`).
    public init(
        dModel: Int, heads: Int, feedForwardSize: Int = 2048, dropout: Float = 0.1, activation: Activation = .relu,
        layerNormEpsilon: Float = 1e-5, batchFirst: Bool = false, normFirst: Bool = false, bias: Bool = true,
        using generator: inout some RandomNumberGenerator
    ) throws {
        guard dModel >= 1 else {
            throw AttentionError.invalidArgument(argument: "dModel", reason: "must be at least 1, got \(dModel)")
        }
        guard feedForwardSize >= 1 else {
            throw AttentionError.invalidArgument(
                argument: "feedForwardSize", reason: "must be at least 1, got \(feedForwardSize)")
        }
        selfAttention = try TorchMultiheadAttention(
            embedDim: dModel, heads: heads, dropout: dropout, bias: bias, batchFirst: batchFirst, using: &generator)
        crossAttention = try TorchMultiheadAttention(
            embedDim: dModel, heads: heads, dropout: dropout, bias: bias, batchFirst: batchFirst, using: &generator)
        linear1 = try Linear(inputSize: dModel, outputSize: feedForwardSize, bias: bias, using: &generator)
        linear2 = try Linear(inputSize: feedForwardSize, outputSize: dModel, bias: bias, using: &generator)
        norm1 = try LayerNorm(size: dModel, epsilon: layerNormEpsilon, bias: bias)
        norm2 = try LayerNorm(size: dModel, epsilon: layerNormEpsilon, bias: bias)
        norm3 = try LayerNorm(size: dModel, epsilon: layerNormEpsilon, bias: bias)
        self.activation = activation
        self.dropout = dropout
        self.normFirst = normFirst
    }

    /// Both attentions' projection weights and `linear1.weight`, `linear2.weight`.
    public var matrixWeightNames: Set<String> {
        matrixWeightNames(of: \.selfAttention, prefixedBy: "self_attn")
            .union(matrixWeightNames(of: \.crossAttention, prefixedBy: "multihead_attn"))
            .union(matrixWeightNames(of: \.linear1, prefixedBy: "linear1"))
            .union(matrixWeightNames(of: \.linear2, prefixedBy: "linear2"))
    }

    /// PyTorch's `state_dict` names, in its order: `self_attn.in_proj_weight`,
    /// `self_attn.in_proj_bias`, `self_attn.out_proj.weight`, `self_attn.out_proj.bias`, the same
    /// under `multihead_attn`, then `linear1`, `linear2`, `norm1`, `norm2` and `norm3` (`weight`
    /// and `bias` each), biases only with `bias: true`.
    public var parameterPaths: [ParameterPath<TransformerDecoderLayer>] {
        parameterPaths(of: \.selfAttention, prefixedBy: "self_attn")
            + parameterPaths(of: \.crossAttention, prefixedBy: "multihead_attn")
            + parameterPaths(of: \.linear1, prefixedBy: "linear1") + parameterPaths(of: \.linear2, prefixedBy: "linear2")
            + parameterPaths(of: \.norm1, prefixedBy: "norm1") + parameterPaths(of: \.norm2, prefixedBy: "norm2")
            + parameterPaths(of: \.norm3, prefixedBy: "norm3")
    }
}
