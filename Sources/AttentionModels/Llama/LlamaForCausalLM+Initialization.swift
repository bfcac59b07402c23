import Attention

extension LlamaForCausalLM {
    /// A new model of `configuration`'s shape, initialised as `transformers`' `LlamaForCausalLM`
    /// initialises one: the embedding, every projection and the LM head drawn from
    /// `N(0, initializerRange²)`, biases zero, every RMS norm's weight one. All f32.
    ///
    /// ```swift
    /// let configuration = try LlamaConfiguration(
    ///     vocabularySize: 256, hiddenSize: 64, intermediateSize: 176, layerCount: 2, headCount: 4)
    /// let model = try LlamaForCausalLM(initializing: configuration, seed: 7)
    /// ```
    ///
    /// The same seed gives the same weights on every machine; they are not the numbers PyTorch
    /// draws (its generator differs), only from the same distributions.
    ///
    /// - Throws: `AttentionError.outOfMemory` or `.overflow` when the tensors cannot be allocated.
    public init(initializing configuration: LlamaConfiguration, seed: UInt64) throws {
        let source = LlamaInitialWeights(standardDeviation: configuration.initializerRange, seed: seed)
        try self.init(configuration: configuration, checkpoint: source, weightDType: .float32)
    }
}

/// The weights of a new model, drawn in the order the model asks for them: matrices (rank 2)
/// from the normal distribution, biases zero, norm weights one.
private final class LlamaInitialWeights: LlamaWeightSource {
    private let standardDeviation: Float
    private var generator: SeededGenerator

    init(standardDeviation: Float, seed: UInt64) {
        self.standardDeviation = standardDeviation
        generator = SeededGenerator(seed: seed)
    }

    func tensor(_ name: String, shape: [Int], dtype: Tensor.DType?) throws -> Tensor {
        if shape.count == 2 {
            return try Tensor(randomNormal: shape, standardDeviation: standardDeviation, using: &generator)
        }
        return name.hasSuffix(".bias") ? try Tensor(zeros: shape) : try Tensor(ones: shape)
    }
}
