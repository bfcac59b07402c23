import Attention

// The backward pass of BertModel: the embeddings' tables and norm, and each layer's packed
// attention, projections and norms, through the library's pullbacks.

extension BertModel: Layer {}

extension BertModel: DifferentiableLayer {
    /// Token ids have no gradient.
    public typealias InputGradient = Void

    /// The hidden states, as ``callAsFunction(_:)``, with the pullback: the gradient of every
    /// parameter under transformers' names (`encoder.layer.0.attention.self.query.weight`, ...,
    /// in their `(outputs, inputs)` layout), for the gradient of the hidden states.
    ///
    /// ```swift
    /// let (hidden, pullback) = try model.callWithPullback(batch)   // (tokenCount, hiddenSize)
    /// let gradients = try pullback(dHidden).parameters
    /// gradients["embeddings.word_embeddings.weight"]               // (vocabularySize, hiddenSize)
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ batch: TokenBatch) throws -> (output: Tensor, pullback: LayerPullback<BertModel>) {
        try requireFloat32Parameters(reason: bertFloat32Reason)
        let summed = try embeddings.summed(batch)
        let (embedded, normBack) = try embeddings.norm.callWithPullback(summed)
        var hidden = embedded
        var backs: [LayerPullback<BertLayer>] = []
        for layer in layers {
            let (output, back) = try layer.callWithPullback(hidden, batch: batch)
            (hidden, backs) = (output, backs + [back])
        }
        let layerBacks = backs
        return (hidden, LayerPullback(self, outputShape: hidden.shape) { dHidden in
            var parameters = try ParameterGradients(zerosFor: self)
            var gradient = dHidden
            for (index, back) in layerBacks.enumerated().reversed() {
                let g = try back(gradient)
                parameters.assign(g.parameters, to: \.layers[index])
                gradient = g.input
            }
            let normGradients = try normBack(gradient)
            parameters.assign(normGradients.parameters, to: \.embeddings.norm)
            try embeddings.addTableGradients(normGradients.input, batch: batch, to: &parameters)
            return LayerGradients(parameters: parameters, input: ())
        })
    }
}

extension BertEmbeddings {
    /// Adds each token's gradient `dSum` (before the norm) to its word's, its position's and the
    /// token type 0 rows of the tables' gradients.
    func addTableGradients(_ dSum: Tensor, batch: TokenBatch, to parameters: inout ParameterGradients<BertModel>) throws {
        let hidden = wordEmbeddings.shape[1]
        var words = try Tensor(zeros: wordEmbeddings.shape)
        var positions = try Tensor(zeros: positionEmbeddings.shape)
        var types = try Tensor(zeros: tokenTypeEmbeddings.shape)
        dSum.withUnsafeBufferPointer { g in
            words.withUnsafeMutableBufferPointer { w in
                positions.withUnsafeMutableBufferPointer { p in
                    types.withUnsafeMutableBufferPointer { t in
                        for range in batch.ranges {
                            for row in range {
                                let (word, position) = (batch.tokenIDs[row] * hidden, (row - range.lowerBound) * hidden)
                                for column in 0..<hidden {
                                    let value = g[row * hidden + column]
                                    w[word + column] += value
                                    p[position + column] += value
                                    t[column] += value
                                }
                            }
                        }
                    }
                }
            }
        }
        try parameters.assign(words, to: \.embeddings.wordEmbeddings)
        try parameters.assign(positions, to: \.embeddings.positionEmbeddings)
        try parameters.assign(types, to: \.embeddings.tokenTypeEmbeddings)
    }
}

extension BertLayer: Layer {
    /// What a call takes: the hidden states of a packed batch and the batch.
    public struct Input: Sendable {
        /// `(tokenCount, hiddenSize)`.
        public var hidden: Tensor
        /// The sequences packed in `hidden`.
        public var batch: TokenBatch

        /// An input from its parts.
        public init(hidden: Tensor, batch: TokenBatch) {
            (self.hidden, self.batch) = (hidden, batch)
        }
    }

    /// The layer on `input.hidden`, as ``callAsFunction(_:batch:)``.
    public func callAsFunction(_ input: Input) throws -> Tensor {
        try callAsFunction(input.hidden, batch: input.batch)
    }
}

extension BertLayer: DifferentiableLayer {
    /// The layer, as ``callAsFunction(_:)``, with its pullback; the input gradient is the
    /// hidden states'.
    public func callWithPullback(_ input: Input) throws -> (output: Tensor, pullback: LayerPullback<BertLayer>) {
        try callWithPullback(input.hidden, batch: input.batch)
    }

    /// The layer on `hidden`, as ``callAsFunction(_:batch:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:batch:)``.
    public func callWithPullback(_ hidden: Tensor, batch: TokenBatch) throws -> (output: Tensor, pullback: LayerPullback<BertLayer>) {
        try checkInput(hidden, batch: batch)
        let size = hidden.shape[1]
        let core = MultiHeadAttentionCore(heads: headCount, queryKeySize: size / headCount)
        let rows = try hidden.reshaped([1, batch.tokenCount, size])
        let (heads, projectionBack) = try core.projectWithPullback(
            query: rows, key: rows, value: rows, with: .separate(query: query, key: key, value: value))
        let (context, attentionBack) = try core.attendWithPullback(
            heads, sequenceLengths: batch.ranges.map(\.count),
            context: "\(batch.tokenCount) tokens of \(batch.ranges.count) sequences, \(headCount) heads")
        let (projected, outputBack) = try attentionOutput.callWithPullback(context)
        let (attended, attentionNormBack) = try attentionNorm.callWithPullback(try projected + hidden)
        let (intermediated, intermediateBack) = try intermediate.callWithPullback(attended)
        let (expanded, activationBack) = try activation.callWithPullback(intermediated)
        let (out, finalBack) = try output.callWithPullback(expanded)
        let (normed, outputNormBack) = try outputNorm.callWithPullback(try out + attended)
        return (normed, LayerPullback(self, outputShape: normed.shape) { dy in
            var parameters = try ParameterGradients(zerosFor: self)
            let outputNormGradients = try outputNormBack(dy)
            let finalGradients = try finalBack(outputNormGradients.input)
            let intermediateGradients = try intermediateBack(try activationBack(finalGradients.input).input)
            let dAttended = try outputNormGradients.input + intermediateGradients.input
            let attentionNormGradients = try attentionNormBack(dAttended)
            let outputGradients = try outputBack(attentionNormGradients.input)
            let dContext = try outputGradients.input.reshaped([1, batch.tokenCount, size])
            let projection = try projectionBack(try attentionBack(dContext), summingShared: true)
            if case let .separate(queryGradients, keyGradients, valueGradients) = projection.layers {
                parameters.assign(queryGradients, to: \.query)
                parameters.assign(keyGradients, to: \.key)
                parameters.assign(valueGradients, to: \.value)
            }
            parameters.assign(outputGradients.parameters, to: \.attentionOutput)
            parameters.assign(attentionNormGradients.parameters, to: \.attentionNorm)
            parameters.assign(intermediateGradients.parameters, to: \.intermediate)
            parameters.assign(finalGradients.parameters, to: \.output)
            parameters.assign(outputNormGradients.parameters, to: \.outputNorm)
            let dHidden = try projection.query.reshaped(hidden.shape)
            return LayerGradients(parameters: parameters, input: try attentionNormGradients.input + dHidden)
        })
    }
}
