import Attention

/// BERT's input embeddings: word + position + token type, then a layer norm.
///
/// Parameter names as in `transformers`' `BertEmbeddings`: `word_embeddings.weight`,
/// `position_embeddings.weight`, `token_type_embeddings.weight`, `LayerNorm.weight`,
/// `LayerNorm.bias`. Every token here has token type 0 (one sentence per sequence), and positions
/// restart at 0 for each sequence of a ``TokenBatch``.
///
/// ```swift
/// let hidden = try model.embeddings(batch)   // (batch.tokenCount, hiddenSize)
/// ```
public struct BertEmbeddings: ParameterizedModule, Equatable {
    /// `(vocabularySize, hiddenSize)`.
    public var wordEmbeddings: Tensor
    /// `(maxPositions, hiddenSize)`.
    public var positionEmbeddings: Tensor
    /// `(tokenTypeCount, hiddenSize)`.
    public var tokenTypeEmbeddings: Tensor
    /// The layer norm after the sum.
    public var norm: LayerNorm

    /// Embeddings of zeros (a norm of ones and zeros) with the configuration's shapes, to be
    /// loaded from a checkpoint.
    ///
    /// - Throws: `AttentionError.outOfMemory` when the tables cannot be allocated.
    public init(configuration: BertConfiguration) throws {
        let hidden = configuration.hiddenSize
        wordEmbeddings = try Tensor(zeros: [configuration.vocabularySize, hidden])
        positionEmbeddings = try Tensor(zeros: [configuration.maxPositions, hidden])
        tokenTypeEmbeddings = try Tensor(zeros: [configuration.tokenTypeCount, hidden])
        norm = try LayerNorm(size: hidden, epsilon: configuration.layerNormEpsilon)
    }

    /// The names of `transformers`' `BertEmbeddings`.
    public var parameterPaths: [ParameterPath<BertEmbeddings>] {
        [
            ParameterPath("word_embeddings.weight", \.wordEmbeddings), ParameterPath("position_embeddings.weight", \.positionEmbeddings),
            ParameterPath("token_type_embeddings.weight", \.tokenTypeEmbeddings),
        ] + parameterPaths(of: \.norm, prefixedBy: "LayerNorm")
    }

    /// The embedded, normalised tokens of every sequence, packed: `(tokenCount, hiddenSize)`.
    ///
    /// - Throws: `ModelError.invalidArgument` for a token id outside the word table
    ///   (`"tokenIDs[i]"`, `i` the packed position) or a sequence longer than the position table
    ///   (`"sequences[i]"`); `AttentionError.unsupportedDType` (naming the parameter) for a
    ///   half-precision table; `AttentionError` from the layer norm.
    public func callAsFunction(_ batch: TokenBatch) throws -> Tensor {
        try norm(summed(batch))
    }

    /// The three embeddings of every token, added in transformers' order, before the norm.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    func summed(_ batch: TokenBatch) throws -> Tensor {
        try requireFloat32Parameters(reason: bertFloat32Reason)
        let hidden = wordEmbeddings.shape[1]
        let vocabulary = wordEmbeddings.shape[0]
        let positions = positionEmbeddings.shape[0]
        for (index, range) in batch.ranges.enumerated() where range.count > positions {
            throw ModelError.invalidArgument(
                argument: "sequences[\(index)]",
                reason: "has \(range.count) tokens, more than the \(positions) positions of the model")
        }
        if let bad = batch.tokenIDs.firstIndex(where: { !(0..<vocabulary).contains($0) }) {
            throw ModelError.invalidArgument(
                argument: "tokenIDs[\(bad)]", reason: "\(batch.tokenIDs[bad]) is not in 0..<\(vocabulary)")
        }
        var sum = try Tensor(zeros: [batch.tokenCount, hidden])
        sum.withUnsafeMutableBufferPointer { output in
            wordEmbeddings.withUnsafeBufferPointer { words in
                positionEmbeddings.withUnsafeBufferPointer { positionTable in
                    tokenTypeEmbeddings.withUnsafeBufferPointer { types in
                        for range in batch.ranges {
                            for row in range {
                                let word = batch.tokenIDs[row] * hidden
                                let position = (row - range.lowerBound) * hidden
                                let out = row * hidden
                                // transformers adds in this order: (word + token type) + position.
                                for column in 0..<hidden {
                                    output[out + column] =
                                        words[word + column] + types[column] + positionTable[position + column]
                                }
                            }
                        }
                    }
                }
            }
        }
        return sum
    }
}
