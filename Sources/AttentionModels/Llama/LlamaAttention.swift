import Attention

/// The self-attention of one Llama layer (`self_attn`): query, key and value projections, the
/// rotary embedding on queries and keys, the new keys and values appended to the cache, attention
/// of the new queries over the cache (grouped-query: no key repeated), and the output projection.
struct LlamaAttention: ParameterizedModule, Equatable {
    /// `q_proj`, `k_proj` and `v_proj` stacked: one product per call.
    var projection: FusedLinear
    var output: Linear
    let headCount: Int
    let keyValueHeadCount: Int
    let headSize: Int

    /// Reads `prefix.q_proj.weight`, ... (and their biases when the configuration has them).
    /// Weights in `weightDType` (`nil`: as stored), biases in f32.
    init(configuration c: LlamaConfiguration, checkpoint: LlamaCheckpoint, prefix: String, weightDType: Tensor.DType?) throws {
        func weight(_ name: String, _ outputs: Int, _ inputs: Int) throws -> Tensor {
            try checkpoint.tensor("\(prefix).\(name).weight", shape: [outputs, inputs], dtype: weightDType)
        }
        func bias(_ name: String, _ outputs: Int) throws -> Tensor? {
            c.attentionBias ? try checkpoint.tensor("\(prefix).\(name).bias", shape: [outputs], dtype: .float32) : nil
        }
        let (queryWidth, keyWidth) = (c.headCount * c.headSize, c.keyValueHeadCount * c.headSize)
        let parts = [("q_proj", queryWidth), ("k_proj", keyWidth), ("v_proj", keyWidth)]
        let biases = try parts.map { try bias($0.0, $0.1) }
        projection = try FusedLinear(
            weights: parts.map { try weight($0.0, $0.1, c.hiddenSize) }, biases: c.attentionBias ? biases.map { $0! } : nil)
        output = try Linear(weight: weight("o_proj", c.hiddenSize, queryWidth), bias: bias("o_proj", c.hiddenSize))
        headCount = c.headCount
        keyValueHeadCount = c.keyValueHeadCount
        headSize = c.headSize
    }

    /// `transformers`' names: `q_proj`, `k_proj`, `v_proj` (read from and written to the stacked
    /// projection), `o_proj`.
    var parameterPaths: [ParameterPath<LlamaAttention>] {
        var paths: [ParameterPath<LlamaAttention>] = [
            ParameterPath("q_proj.weight", \.projection[weight: 0]), ParameterPath("k_proj.weight", \.projection[weight: 1]),
            ParameterPath("v_proj.weight", \.projection[weight: 2]),
        ]
        if projection.linear.bias != nil {
            paths += [
                ParameterPath("q_proj.bias", \.projection[bias: 0]), ParameterPath("k_proj.bias", \.projection[bias: 1]),
                ParameterPath("v_proj.bias", \.projection[bias: 2]),
            ]
        }
        return paths + parameterPaths(of: \.output, prefixedBy: "o_proj")
    }

    /// `(batch, rows, hiddenSize)` normalised hidden states in, `residual` plus the attention's
    /// contribution out (same shape; the addition fused into the output projection); the layer's
    /// cache gains the new keys and values.
    func callAsFunction(
        _ hidden: Tensor, adding residual: Tensor, step: LlamaStep, layer: Int, rotary: RotaryPositionalEmbedding,
        cache: inout LlamaKeyValueCache
    ) throws -> Tensor {
        let (batch, rows) = (hidden.shape[0], hidden.shape[1])
        let parts = try projection(hidden, products: step.products) { stacked in
            // Query and key heads are adjacent in every row: rotated together, where they are.
            try rotary.rotate(projection: &stacked, offset: 0, heads: headCount + keyValueHeadCount, starts: step.starts)
        }
        var queries = try parts[0].reshaped([batch, rows, headCount, headSize])
        let keys = try parts[1].reshaped([batch, rows, keyValueHeadCount, headSize])
        let values = try parts[2].reshaped([batch, rows, keyValueHeadCount, headSize])
        try cache.append(layer: layer, keys: keys, values: values, counts: step.counts)
        // With bf16 products over a bf16 cache the queries are rounded to bf16 too, as the
        // projections' inputs are: q, k and v all bf16 put prompts on the VDPBF16PS tile kernel.
        if step.products == .bfloat16 && cache.dtype == .bfloat16 { queries = try queries.converted(to: .bfloat16) }
        let attended = try scaledDotProductAttention(
            query: queries, key: cache.keys[layer], value: cache.values[layer], mask: step.mask, layout: .sequence,
            outputDType: .float32)
        return try output(attended.reshaped([batch, rows, headCount * headSize]), products: step.products, adding: residual)
    }
}
