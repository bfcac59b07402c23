import Attention

/// The self-attention of one Llama layer (`self_attn`): query, key and value projections, the
/// rotary embedding on queries and keys, the new keys and values appended to the cache, attention
/// of the new queries over the cache (grouped-query: no key repeated), and the output projection.
struct LlamaAttention: ParameterizedModule, Equatable {
    var query: Linear
    var key: Linear
    var value: Linear
    var output: Linear
    let headCount: Int
    let keyValueHeadCount: Int
    let headSize: Int

    /// Reads `prefix.q_proj.weight`, ... (and their biases when the configuration has them).
    /// Weights in `weightDType` (`nil`: as stored), biases in f32.
    init(configuration c: LlamaConfiguration, checkpoint: LlamaCheckpoint, prefix: String, weightDType: Tensor.DType?) throws {
        func linear(_ name: String, _ outputs: Int, _ inputs: Int) throws -> Linear {
            let weight = try checkpoint.tensor("\(prefix).\(name).weight", shape: [outputs, inputs], dtype: weightDType)
            let bias = c.attentionBias
                ? try checkpoint.tensor("\(prefix).\(name).bias", shape: [outputs], dtype: .float32) : nil
            return try Linear(weight: weight, bias: bias)
        }
        let (queryWidth, keyWidth) = (c.headCount * c.headSize, c.keyValueHeadCount * c.headSize)
        query = try linear("q_proj", queryWidth, c.hiddenSize)
        key = try linear("k_proj", keyWidth, c.hiddenSize)
        value = try linear("v_proj", keyWidth, c.hiddenSize)
        output = try linear("o_proj", c.hiddenSize, queryWidth)
        headCount = c.headCount
        keyValueHeadCount = c.keyValueHeadCount
        headSize = c.headSize
    }

    var parameterPaths: [ParameterPath<LlamaAttention>] {
        parameterPaths(of: \.query, prefixedBy: "q_proj") + parameterPaths(of: \.key, prefixedBy: "k_proj")
            + parameterPaths(of: \.value, prefixedBy: "v_proj") + parameterPaths(of: \.output, prefixedBy: "o_proj")
    }

    /// `(batch, rows, hiddenSize)` normalised hidden states in, the attention's contribution out
    /// (same shape); the layer's cache gains the new keys and values.
    func callAsFunction(
        _ hidden: Tensor, step: LlamaStep, layer: Int, rotary: LlamaRotaryEmbedding, cache: inout LlamaKeyValueCache
    ) throws -> Tensor {
        let (batch, rows) = (hidden.shape[0], hidden.shape[1])
        var queries = try query(hidden).reshaped([batch, rows, headCount, headSize])
        var keys = try key(hidden).reshaped([batch, rows, keyValueHeadCount, headSize])
        let values = try value(hidden).reshaped([batch, rows, keyValueHeadCount, headSize])
        queries.withUnsafeMutableBufferPointer {
            rotary.rotate($0, rows: batch * rows, heads: headCount, table: step.rotaryTable)
        }
        keys.withUnsafeMutableBufferPointer {
            rotary.rotate($0, rows: batch * rows, heads: keyValueHeadCount, table: step.rotaryTable)
        }
        try cache.append(layer: layer, keys: keys, values: values, counts: step.counts)
        let attended = try scaledDotProductAttention(
            query: queries, key: cache.keys[layer], value: cache.values[layer], mask: step.mask, layout: .sequence)
        return try output(attended.reshaped([batch, rows, headCount * headSize]))
    }
}
