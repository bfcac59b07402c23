/// Multi-head dot-product attention as Flax linen's `nn.MultiHeadDotProductAttention`: inputs
/// with any number of leading batch dimensions, `[batch..., length, features]`, projected to
/// heads `[batch..., length, H, headDim]`, optionally normalised, attended by the fused kernel
/// and projected back to `[batch..., length, outFeatures]`.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let attention = try MultiHeadDotProductAttention(heads: 4, inputFeatures: 32, using: &rng)
/// let x = try Tensor(randomNormal: [2, 3, 10, 32], using: &rng)   // two batch dimensions
/// let y = try attention(query: x)                                  // self-attention: [2, 3, 10, 32]
/// ```
///
/// The computation, for inputs `xq [batch..., L, Fq]`, `xk [batch..., S, Fk]`,
/// `xv [batch..., S, Fv]`:
///
/// ```
/// q = xq · query.kernel + query.bias        [batch..., L, H, d]   (kernel (Fq, H, d))
/// k = xk · key.kernel + key.bias            [batch..., S, H, d]
/// v = xv · value.kernel + value.bias        [batch..., S, H, d]
/// q, k = query_ln(q), key_ln(k)             (normalizeQK only: LayerNorm over d)
/// w = softmax(q kᵀ / √d, where(mask, ·, finfo.min))                [batch..., H, L, S]
/// w = w · keep / (1 - dropoutRate)           (training only)
/// out = (w v) · out.kernel + out.bias       [batch..., L, outFeatures] (kernel (H, d, out))
/// ```
///
/// ## Flax names
///
/// | Flax (`flax.linen.MultiHeadDotProductAttention`) | here |
/// |---|---|
/// | `num_heads` | `heads` |
/// | `qkv_features` (default `inputs_q.shape[-1]`) | `qkvFeatures` (default `inputFeatures`) |
/// | `out_features` (default `inputs_q.shape[-1]`) | `outFeatures` (default `inputFeatures`) |
/// | `inputs_q.shape[-1]`, `inputs_k.shape[-1]`, `inputs_v.shape[-1]` (inferred at `init`) | `inputFeatures`, `keyFeatures` (default `inputFeatures`), `valueFeatures` (default `keyFeatures`), given at construction |
/// | `use_bias` | `useBias` |
/// | `dropout_rate` | ``dropoutRate`` |
/// | `broadcast_dropout` | ``broadcastDropout`` |
/// | `deterministic` (attribute and call argument, merged with `merge_param`) | ``deterministic`` and the call's `deterministic:` |
/// | `dropout_rng` / `make_rng('dropout')` | the call's `dropoutSeed:` |
/// | `normalize_qk` | `normalizeQK` |
/// | `attention_fn` | ``attentionFunction`` |
/// | `kernel_init` = `lecun_normal()`, `bias_init` = `zeros` | fixed: ``Tensor/lecunNormal(_:fanIn:using:)`` and zeros, drawn from `using:` |
/// | `decode=True`, `cache` collection | ``makeCache(batchShape:maxLength:dtype:)`` and ``decode(_:key:value:cache:mask:deterministic:dropoutSeed:)`` with an explicit ``KeyValueCache`` |
/// | `__call__(inputs_q, inputs_k, inputs_v, mask=, deterministic=, dropout_rng=)` | ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)`` |
/// | `sow_weights=True` (`intermediates/attention_weights`) | ``callWithWeights(query:key:value:mask:deterministic:dropoutSeed:)`` |
/// | `dtype`, `param_dtype`, `precision`, `*_dot_general*`, `force_fp32_for_softmax` | not supported: everything is `Float` |
///
/// Parameters (``parameterPaths``, Flax's `params` tree joined with dots):
///
/// | Flax path | shape | here |
/// |---|---|---|
/// | `query.kernel`, `query.bias` | `(Fq, H, d)`, `(H, d)` | ``queryProjection`` |
/// | `key.kernel`, `key.bias` | `(Fk, H, d)`, `(H, d)` | ``keyProjection`` |
/// | `value.kernel`, `value.bias` | `(Fv, H, d)`, `(H, d)` | ``valueProjection`` |
/// | `out.kernel`, `out.bias` | `(H, d, out)`, `(out,)` | ``outputProjection`` |
/// | `query_ln.scale`, `key_ln.scale` | `(d,)` | ``queryNorm``, ``keyNorm`` (their `weight`) |
///
/// So a Flax checkpoint saved as safetensors loads directly:
///
/// ```swift
/// var attention = try MultiHeadDotProductAttention(heads: 8, inputFeatures: 512, using: &rng)
/// try attention.loadParameters(from: SafeTensors(contentsOf: url), prefix: "params.encoder.attention")
/// ```
///
/// Differences from Flax: the random numbers (initialisation and dropout) come from this
/// module's generators, not JAX's, so they have the same distributions but not the same values;
/// the input widths are given at construction instead of inferred from the first call; dropout at
/// training time needs an explicit `dropoutSeed`; and decoding throws instead of overwriting the
/// last cache slot when the cache is full.
public struct MultiHeadDotProductAttention: ParameterizedModule {
    /// The number of heads (Flax's `num_heads`).
    public let heads: Int

    /// The query projection, kernel `(inputFeatures, H, headDim)` (Flax's `query`).
    public var queryProjection: Linear

    /// The key projection, kernel `(keyFeatures, H, headDim)` (Flax's `key`).
    public var keyProjection: Linear

    /// The value projection, kernel `(valueFeatures, H, headDim)` (Flax's `value`).
    public var valueProjection: Linear

    /// The output projection, kernel `(H, headDim, outFeatures)` (Flax's `out`).
    public var outputProjection: Linear

    /// The layer norm of the query heads over `headDim`, one scale shared by all heads, no bias,
    /// epsilon 1e-6, fast variance (Flax's `query_ln`); `nil` unless `normalizeQK`.
    public var queryNorm: LayerNorm?

    /// The layer norm of the key heads (Flax's `key_ln`), as ``queryNorm``; `nil` unless
    /// `normalizeQK`. Keys are normalised before they are cached.
    public var keyNorm: LayerNorm?

    /// The probability of dropping an attention weight while training, in `[0, 1)` (Flax's
    /// `dropout_rate`).
    public var dropoutRate: Float

    /// Whether one dropout mask `(L, S)` is shared by every batch and head (Flax's
    /// `broadcast_dropout`, true by default) rather than drawn per weight.
    public var broadcastDropout: Bool

    /// Whether calls are deterministic (no dropout), when fixed here rather than per call
    /// (Flax's `deterministic` attribute). With ``dropoutRate`` above 0, exactly one of this and
    /// the call's `deterministic:` must be given, as Flax's `merge_param` requires.
    public var deterministic: Bool?

    /// The attention on the projected heads (Flax's `attention_fn`); ``AttentionFunction/fused``
    /// by default.
    public var attentionFunction: AttentionFunction

    /// The size of each head: `qkvFeatures / heads`.
    public var headDimension: Int { queryProjection.weight.shape.last ?? 0 }

    /// The width of the projected query, key and value, `heads · headDimension` (Flax's
    /// `qkv_features`).
    public var qkvFeatures: Int { heads * headDimension }

    /// The width of the query input, `inputs_q.shape[-1]`.
    public var inputFeatures: Int { queryProjection.weight.shape.first ?? 0 }

    /// The width of the key input, `inputs_k.shape[-1]`.
    public var keyFeatures: Int { keyProjection.weight.shape.first ?? 0 }

    /// The width of the value input, `inputs_v.shape[-1]`.
    public var valueFeatures: Int { valueProjection.weight.shape.first ?? 0 }

    /// The width of the output (Flax's `out_features`).
    public var outFeatures: Int { outputProjection.weight.shape.last ?? 0 }

    /// Whether the projections have biases (Flax's `use_bias`).
    public var useBias: Bool { queryProjection.bias != nil }

    /// Whether the query and key heads are layer-normalised (Flax's `normalize_qk`).
    public var normalizeQK: Bool { queryNorm != nil }

    /// Creates the module with Flax's initialisation: every kernel LeCun normal on its flattened
    /// 2-D shape (fan-in `inputFeatures`, `keyFeatures`, `valueFeatures` for the query, key and
    /// value kernels, `qkvFeatures` for the output kernel; drawn in that order), biases zeros,
    /// layer-norm scales ones.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 0)
    /// // Flax: MultiHeadDotProductAttention(num_heads=2, qkv_features=8, out_features=10)
    /// // called on inputs_q [.., 6], inputs_k [.., 10], inputs_v [.., 12]
    /// let cross = try MultiHeadDotProductAttention(
    ///     heads: 2, inputFeatures: 6, keyFeatures: 10, valueFeatures: 12,
    ///     qkvFeatures: 8, outFeatures: 10, using: &rng)
    /// ```
    ///
    /// - Parameters:
    ///   - heads: the number of heads.
    ///   - inputFeatures: the width of the query input (and of the key and value inputs unless
    ///     given).
    ///   - keyFeatures: the width of the key input; `inputFeatures` by default.
    ///   - valueFeatures: the width of the value input; `keyFeatures` by default (the value
    ///     input defaults to the key input).
    ///   - qkvFeatures: the width of the projected query, key and value, divisible by `heads`;
    ///     `inputFeatures` by default.
    ///   - outFeatures: the width of the output; `inputFeatures` by default.
    ///   - useBias: whether the four projections have biases.
    ///   - dropoutRate: dropout on the attention weights while training, in `[0, 1)`.
    ///   - broadcastDropout: share one dropout mask across batch and heads.
    ///   - deterministic: fixes whether calls are deterministic; `nil` to decide per call.
    ///   - normalizeQK: layer-normalise the query and key heads.
    ///   - attentionFunction: the attention on the heads; the fused kernel by default.
    ///   - generator: the source of the kernels' random values.
    /// - Throws: `AttentionError.invalidArgument` (`"heads"`, `"inputFeatures"`,
    ///   `"keyFeatures"`, `"valueFeatures"`, `"qkvFeatures"`, `"outFeatures"`, `"dropoutRate"`)
    ///   for a size below 1, a `qkvFeatures` not divisible by `heads`, or a rate outside `[0, 1)`.
    public init(
        heads: Int,
        inputFeatures: Int,
        keyFeatures: Int? = nil,
        valueFeatures: Int? = nil,
        qkvFeatures: Int? = nil,
        outFeatures: Int? = nil,
        useBias: Bool = true,
        dropoutRate: Float = 0,
        broadcastDropout: Bool = true,
        deterministic: Bool? = nil,
        normalizeQK: Bool = false,
        attentionFunction: AttentionFunction = .fused,
        using generator: inout some RandomNumberGenerator
    ) throws {
        let keyFeatures = keyFeatures ?? inputFeatures
        let valueFeatures = valueFeatures ?? keyFeatures
        let qkvFeatures = qkvFeatures ?? inputFeatures
        let outFeatures = outFeatures ?? inputFeatures
        for (name, size) in [
            ("heads", heads), ("inputFeatures", inputFeatures), ("keyFeatures", keyFeatures),
            ("valueFeatures", valueFeatures), ("qkvFeatures", qkvFeatures), ("outFeatures", outFeatures),
        ] where size < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        guard qkvFeatures % heads == 0 else {
            throw AttentionError.invalidArgument(
                argument: "qkvFeatures",
                reason: "must be divisible by the number of heads (\(heads)), got \(qkvFeatures)")
        }
        try Self.validateRate(dropoutRate)
        let headDimension = qkvFeatures / heads

        func headProjection(inputs: Int) throws -> Linear {
            try Linear(
                kernel: .lecunNormal([inputs, heads, headDimension], fanIn: inputs, using: &generator),
                bias: useBias ? Tensor(zeros: [heads, headDimension]) : nil, inputAxes: 1)
        }
        self.heads = heads
        queryProjection = try headProjection(inputs: inputFeatures)
        keyProjection = try headProjection(inputs: keyFeatures)
        valueProjection = try headProjection(inputs: valueFeatures)
        outputProjection = try Linear(
            kernel: .lecunNormal([heads, headDimension, outFeatures], fanIn: qkvFeatures, using: &generator),
            bias: useBias ? Tensor(zeros: [outFeatures]) : nil, inputAxes: 2)
        if normalizeQK {
            queryNorm = try Self.headNorm(size: headDimension)
            keyNorm = try Self.headNorm(size: headDimension)
        }
        self.dropoutRate = dropoutRate
        self.broadcastDropout = broadcastDropout
        self.deterministic = deterministic
        self.attentionFunction = attentionFunction
    }

    /// Flax's `LayerNorm(use_bias=False)` on the head dimension: epsilon 1e-6, fast variance,
    /// scale ones.
    private static func headNorm(size: Int) throws -> LayerNorm {
        try LayerNorm(size: size, epsilon: 1e-6, bias: false, variance: .fast)
    }

    static func validateRate(_ rate: Float) throws(AttentionError) {
        guard rate >= 0, rate < 1 else {
            throw .invalidArgument(argument: "dropoutRate", reason: "must be in [0, 1), got \(rate)")
        }
    }

    /// The four projections' kernels (`query.kernel`, `key.kernel`, `value.kernel`, `out.kernel`).
    public var matrixWeightNames: Set<String> {
        matrixWeightNames(of: \.queryProjection, prefixedBy: "query")
            .union(matrixWeightNames(of: \.keyProjection, prefixedBy: "key"))
            .union(matrixWeightNames(of: \.valueProjection, prefixedBy: "value"))
            .union(matrixWeightNames(of: \.outputProjection, prefixedBy: "out"))
    }

    /// Flax's parameter names: `query.kernel`, `query.bias`, `key.kernel`, `key.bias`,
    /// `value.kernel`, `value.bias`, `out.kernel`, `out.bias` (biases when `useBias`), then
    /// `query_ln.scale` and `key_ln.scale` (when `normalizeQK`).
    ///
    /// ```swift
    /// attention.parameterShapes.map(\.name)
    /// // ["query.kernel", "query.bias", "key.kernel", "key.bias", "value.kernel", "value.bias",
    /// //  "out.kernel", "out.bias"]
    /// ```
    public var parameterPaths: [ParameterPath<MultiHeadDotProductAttention>] {
        var paths = parameterPaths(of: \.queryProjection, prefixedBy: "query")
            + parameterPaths(of: \.keyProjection, prefixedBy: "key")
            + parameterPaths(of: \.valueProjection, prefixedBy: "value")
            + parameterPaths(of: \.outputProjection, prefixedBy: "out")
        if queryNorm?.weight != nil { paths.append(ParameterPath("query_ln.scale", \.queryNorm!.weight!)) }
        if keyNorm?.weight != nil { paths.append(ParameterPath("key_ln.scale", \.keyNorm!.weight!)) }
        return paths
    }


}
