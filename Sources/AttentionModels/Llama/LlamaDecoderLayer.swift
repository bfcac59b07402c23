import Attention

/// One pre-norm Llama decoder layer (`model.layers.N`):
///
/// ```
/// h = x + self_attn(input_layernorm(x))
/// y = h + mlp(post_attention_layernorm(h))
/// ```
struct LlamaDecoderLayer: ParameterizedModule, Equatable {
    var inputNorm: RMSNorm
    var attention: LlamaAttention
    var postAttentionNorm: RMSNorm
    var mlp: LlamaMLP

    /// Projection weights in `weightDType` (`nil`: as stored), norms in f32.
    init(configuration c: LlamaConfiguration, checkpoint: some LlamaWeightSource, prefix: String, weightDType: Tensor.DType?) throws {
        func norm(_ name: String) throws -> RMSNorm {
            try RMSNorm(
                weight: checkpoint.tensor("\(prefix).\(name).weight", shape: [c.hiddenSize], dtype: .float32),
                epsilon: c.rmsNormEpsilon)
        }
        inputNorm = try norm("input_layernorm")
        attention = try LlamaAttention(configuration: c, checkpoint: checkpoint, prefix: "\(prefix).self_attn", weightDType: weightDType)
        postAttentionNorm = try norm("post_attention_layernorm")
        mlp = try LlamaMLP(configuration: c, checkpoint: checkpoint, prefix: "\(prefix).mlp", weightDType: weightDType)
    }

    var parameterPaths: [ParameterPath<LlamaDecoderLayer>] {
        parameterPaths(of: \.inputNorm, prefixedBy: "input_layernorm")
            + parameterPaths(of: \.attention, prefixedBy: "self_attn")
            + parameterPaths(of: \.postAttentionNorm, prefixedBy: "post_attention_layernorm")
            + parameterPaths(of: \.mlp, prefixedBy: "mlp")
    }

    /// `(batch, rows, hiddenSize)` → same shape; `cache` (the layer's) gains the new keys and values.
    func callAsFunction(
        _ hidden: Tensor, step: LlamaStep, rotary: RotaryPositionalEmbedding, cache: inout KeyValueCache
    ) throws -> Tensor {
        let residual = try attention(inputNorm(hidden), adding: hidden, step: step, rotary: rotary, cache: &cache)
        return try mlp(postAttentionNorm(residual), adding: residual, products: step.products)
    }
}
