import Attention

/// The self-attention of one Llama layer (`self_attn`), an adapter over the shared attention
/// core: query, key and value projections in one product, the rotary embedding on queries and
/// keys in place in its rows, the new keys and values appended to the layer's cache, attention of
/// the new queries over the cache (grouped-query: no key repeated), and the output projection.
struct LlamaAttention: ParameterizedModule, Equatable {
    /// `q_proj`, `k_proj` and `v_proj` stacked row by row, `(q + 2·kv widths, hidden)`: one
    /// product per call; each keeps its checkpoint name as a block of rows.
    var projection: Linear
    var output: Linear
    let headCount: Int
    let keyValueHeadCount: Int
    let headSize: Int

    /// Reads `prefix.q_proj.weight`, ... (and their biases when the configuration has them).
    /// Weights in `weightDType` (`nil`: as stored), biases in f32.
    init(configuration c: LlamaConfiguration, checkpoint: some LlamaWeightSource, prefix: String, weightDType: Tensor.DType?) throws {
        func weight(_ name: String, _ outputs: Int, _ inputs: Int) throws -> Tensor {
            try checkpoint.tensor("\(prefix).\(name).weight", shape: [outputs, inputs], dtype: weightDType)
        }
        func bias(_ name: String, _ outputs: Int) throws -> Tensor? {
            c.attentionBias ? try checkpoint.tensor("\(prefix).\(name).bias", shape: [outputs], dtype: .float32) : nil
        }
        let (queryWidth, keyWidth) = (c.headCount * c.headSize, c.keyValueHeadCount * c.headSize)
        let parts = [("q_proj", queryWidth), ("k_proj", keyWidth), ("v_proj", keyWidth)]
        projection = try Linear(stacking: parts.map { (try weight($0.0, $0.1, c.hiddenSize), try bias($0.0, $0.1)) })
        output = try Linear(weight: weight("o_proj", c.hiddenSize, queryWidth), bias: bias("o_proj", c.hiddenSize))
        headCount = c.headCount
        keyValueHeadCount = c.keyValueHeadCount
        headSize = c.headSize
    }

    /// The heads of this layer.
    var core: MultiHeadAttentionCore {
        MultiHeadAttentionCore(heads: headCount, keyValueHeads: keyValueHeadCount, queryKeySize: headSize)
    }

    /// `transformers`' names: `q_proj`, `k_proj`, `v_proj` (blocks of the stacked projection's
    /// rows), `o_proj`.
    var parameterPaths: [ParameterPath<LlamaAttention>] {
        let (q, k) = (headCount * headSize, keyValueHeadCount * headSize)
        let blocks = [("q_proj", 0..<q), ("k_proj", q..<(q + k)), ("v_proj", (q + k)..<(q + 2 * k))]
        let paths = blocks.flatMap { name, rows in
            [ParameterPath<LlamaAttention>("\(name).weight", \.projection.weight, storage: .rows(rows))]
                + (projection.bias == nil ? [] : [ParameterPath("\(name).bias", \.projection.bias!, storage: .rows(rows))])
        }
        return paths + parameterPaths(of: \.output, prefixedBy: "o_proj")
    }

    /// `(batch, rows, hiddenSize)` normalised hidden states in, `residual` plus the attention's
    /// contribution out (same shape; the addition fused into the output projection); `cache`
    /// (this layer's) gains the new keys and values.
    func callAsFunction(
        _ hidden: Tensor, adding residual: Tensor, step: LlamaStep, rotary: RotaryPositionalEmbedding,
        cache: inout KeyValueCache
    ) throws -> Tensor {
        var heads = try core.project(
            query: hidden, key: hidden, value: hidden, with: .packed(projection), products: step.products,
            rotary: rotary, starts: step.starts)
        try heads.append(to: &cache, counts: step.counts)
        heads.readKeysAndValues(from: cache, length: cache.maxLength)
        // With bf16 products over a bf16 cache the queries are rounded to bf16 too, as the
        // projections' inputs are: q, k and v all bf16 put prompts on the VDPBF16PS tile kernel.
        if step.products == .bfloat16 && cache.dtype == .bfloat16 { try heads.convertQuery(to: .bfloat16) }
        let attended = try core.attend(
            heads, mask: step.mask, context: "\(hidden.shape[0]) sequences of \(step.rows) new tokens, \(headCount) heads")
        return try output(attended, products: step.products, adding: residual)
    }
}
