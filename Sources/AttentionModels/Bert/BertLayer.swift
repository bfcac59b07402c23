import Attention

/// One post-norm BERT encoder layer: self-attention, then a feed-forward block, each followed by
/// a residual connection and a layer norm:
///
/// ```
/// a = LayerNorm(x + dense(attention(query(x), key(x), value(x))))
/// y = LayerNorm(a + output(activation(intermediate(a))))
/// ```
///
/// Parameter names as in `transformers`' `BertLayer` (`attention.self.query.weight`, ...,
/// `output.LayerNorm.bias`). It runs on a packed ``TokenBatch``: the projections, norms and
/// feed-forward block on all tokens at once, the attention within each sequence (as
/// `scaledDotProductAttention(packedQuery:key:value:sequenceLengths:)` computes it), so a token
/// only ever attends within its own sequence and no padding is computed or stored. The residual
/// connections are summed by the output projections' matrix multiplies.
///
/// ```swift
/// let next = try layer(hidden, batch: batch)   // (tokenCount, hiddenSize) → same shape
/// ```
public struct BertLayer: ParameterizedModule, Equatable {
    /// The query projection, `(hiddenSize, hiddenSize)`.
    public var query: Linear
    /// The key projection, `(hiddenSize, hiddenSize)`.
    public var key: Linear
    /// The value projection, `(hiddenSize, hiddenSize)`.
    public var value: Linear
    /// The projection of the joined heads (`attention.output.dense`).
    public var attentionOutput: Linear
    /// The norm after the attention's residual connection (`attention.output.LayerNorm`).
    public var attentionNorm: LayerNorm
    /// The first feed-forward projection, `(intermediateSize, hiddenSize)`.
    public var intermediate: Linear
    /// The second feed-forward projection, `(hiddenSize, intermediateSize)` (`output.dense`).
    public var output: Linear
    /// The norm after the feed-forward residual connection (`output.LayerNorm`).
    public var outputNorm: LayerNorm
    /// The feed-forward activation.
    public var activation: Activation
    /// The number of attention heads.
    public var headCount: Int

    /// A layer of zeros (norms of ones and zeros) with the configuration's shapes, to be loaded.
    ///
    /// - Throws: `AttentionError` when the parameters cannot be allocated.
    public init(configuration: BertConfiguration) throws {
        let hidden = configuration.hiddenSize
        // Kernels (inputs, outputs): the layout the matrix multiply reads fastest for a few rows
        // (one short sentence); the checkpoint's (outputs, inputs) weights are transposed once,
        // when loaded (``parameterPaths``).
        func linear(_ inputs: Int, _ outputs: Int) throws -> Linear {
            try Linear(kernel: Tensor(zeros: [inputs, outputs]), bias: Tensor(zeros: [outputs]), inputAxes: 1)
        }
        query = try linear(hidden, hidden)
        key = try linear(hidden, hidden)
        value = try linear(hidden, hidden)
        attentionOutput = try linear(hidden, hidden)
        attentionNorm = try LayerNorm(size: hidden, epsilon: configuration.layerNormEpsilon)
        intermediate = try linear(hidden, configuration.intermediateSize)
        output = try linear(configuration.intermediateSize, hidden)
        outputNorm = try LayerNorm(size: hidden, epsilon: configuration.layerNormEpsilon)
        activation = configuration.activation
        headCount = configuration.headCount
    }

    /// The six projections, with `transformers`' names.
    private static var projections: [(name: String, layer: WritableKeyPath<BertLayer, Linear>)] {
        [
            ("attention.self.query", \.query), ("attention.self.key", \.key), ("attention.self.value", \.value),
            ("attention.output.dense", \.attentionOutput), ("intermediate.dense", \.intermediate),
            ("output.dense", \.output),
        ]
    }

    /// The six projections' weights (query, key, value, attention output, intermediate, output).
    public var matrixWeightNames: Set<String> { Set(Self.projections.map { "\($0.name).weight" }) }

    /// The names of `transformers`' `BertLayer`; each projection's `weight` is named in PyTorch's
    /// `(outputs, inputs)` layout and stored transposed.
    public var parameterPaths: [ParameterPath<BertLayer>] {
        let projections = Self.projections
        func projection(_ index: Int) -> [ParameterPath<BertLayer>] {
            let (name, layer) = projections[index]
            return [ParameterPath("\(name).weight", layer.appending(path: \.weight), storage: .transposed)]
                + (self[keyPath: layer].bias == nil ? [] : [ParameterPath("\(name).bias", layer.appending(path: \.bias!))])
        }
        return (0..<4).flatMap(projection)
            + parameterPaths(of: \.attentionNorm, prefixedBy: "attention.output.LayerNorm")
            + projection(4) + projection(5)
            + parameterPaths(of: \.outputNorm, prefixedBy: "output.LayerNorm")
    }

    /// Applies the layer to the packed hidden states of `batch`, `(tokenCount, hiddenSize)`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (argument `"hidden"`) unless `hidden` is
    ///   `float32`, (naming the parameter, e.g. `"attention.output.LayerNorm.weight"`) for a
    ///   half-precision parameter other than a projection weight; `.shapeMismatch` (argument
    ///   `"hidden"`) when `hidden` is not `(batch.tokenCount, hiddenSize)` or the hidden size is
    ///   not a multiple of ``headCount``; the layers' and the attention's errors.
    public func callAsFunction(_ hidden: Tensor, batch: TokenBatch) throws -> Tensor {
        try checkInput(hidden, batch: batch)
        let context = try attention(hidden, batch: batch)
        let attended = try attentionNorm(attentionOutput(context, adding: hidden))
        let expanded = try activation(intermediate(attended))
        return try outputNorm(output(expanded, adding: attended))
    }

    /// Multi-head attention of each sequence over itself, on the shared attention core: the
    /// query, key and value projections of the packed tokens read in place as
    /// `(tokenCount, heads, headSize)`, each sequence attending within its own rows; the joined
    /// heads `(tokenCount, hiddenSize)` out.
    /// The checks of a call: the dtypes, and the hidden states' shape against the batch.
    func checkInput(_ hidden: Tensor, batch: TokenBatch) throws {
        guard hidden.dtype == .float32 else {
            throw AttentionError.unsupportedDType(
                argument: "hidden", dtype: hidden.dtype, reason: "the layer takes float32 hidden states")
        }
        try requireFloat32Parameters(reason: bertFloat32Reason)
        let size = query.inputSize
        guard hidden.shape == [batch.tokenCount, size], headCount >= 1, size % headCount == 0 else {
            throw AttentionError.shapeMismatch(
                argument: "hidden",
                expected: "[\(batch.tokenCount), \(size)] (tokenCount, hiddenSize), hiddenSize a multiple of \(headCount) heads",
                actual: hidden.shape)
        }
    }

    private func attention(_ hidden: Tensor, batch: TokenBatch) throws -> Tensor {
        let size = hidden.shape[1]
        let core = MultiHeadAttentionCore(heads: headCount, queryKeySize: size / headCount)
        let rows = try hidden.reshaped([1, batch.tokenCount, size])
        let heads = try core.project(
            query: rows, key: rows, value: rows, with: .separate(query: query, key: key, value: value))
        return try core.attend(
            heads, sequenceLengths: batch.ranges.map(\.count),
            context: "\(batch.tokenCount) tokens of \(batch.ranges.count) sequences, \(headCount) heads")
    }
}
