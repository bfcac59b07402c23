import Testing

import Attention

@Suite("README training example")
struct TrainingSnippetTests {
    /// README "Training": a model of one's own composed of library modules, trained with AdamW.
    @Test func lossFalls() throws {
        var losses: [Float] = []
        func print(_ step: Int, _ loss: Float) { losses.append(loss) }
        // Snippet:

        /// A token classifier: a transformer encoder and a linear head.
        struct Classifier: DifferentiableLayer {
            var encoder: TransformerEncoder
            var head: Linear

            var parameterPaths: [ParameterPath<Classifier>] {
                parameterPaths(of: \.encoder, prefixedBy: "encoder") + parameterPaths(of: \.head, prefixedBy: "head")
            }

            func callAsFunction(_ x: Tensor) throws -> Tensor { try head(encoder(x)) }

            func callWithPullback(_ x: Tensor) throws -> (output: Tensor, pullback: LayerPullback<Classifier>) {
                let (encoded, encoderPullback) = try encoder.callWithPullback(x)
                let (logits, headPullback) = try head.callWithPullback(encoded)
                return (logits, LayerPullback(self, outputShape: logits.shape) { dLogits in
                    let head = try headPullback(dLogits)
                    let encoder = try encoderPullback(head.input)
                    var parameters = try ParameterGradients(zerosFor: self)
                    parameters.assign(head.parameters, to: \.head)
                    parameters.assign(encoder.parameters, to: \.encoder)
                    return LayerGradients(parameters: parameters, input: encoder.input)
                })
            }
        }

        var rng = SeededGenerator(seed: 0)
        let layers = try (0..<2).map { _ in
            try TransformerEncoderLayer(dModel: 32, heads: 4, feedForwardSize: 64, dropout: 0, batchFirst: true, using: &rng)
        }
        var model = Classifier(
            encoder: try TransformerEncoder(layers: layers, norm: LayerNorm(size: 32)),
            head: try Linear(inputSize: 32, outputSize: 3, using: &rng))

        // The task: each token's class is how many of its first two features are positive.
        let x = try Tensor(randomNormal: [8, 6, 32], using: &rng)                  // (N, L, E)
        let features = x.scalars
        let targets = try IndexArray(shape: [8, 6], indices: (0..<48).map { token in
            (features[token * 32] > 0 ? 1 : 0) + (features[token * 32 + 1] > 0 ? 1 : 0)
        })

        var optimizer = AdamW(learningRate: 3e-3)
        let schedule = try LearningRateSchedule(peak: 3e-3, warmupSteps: 5, totalSteps: 60)
        for step in 0..<60 {
            let (logits, pullback) = try model.callWithPullback(x)
            let loss = try crossEntropy(logits: logits, targets: targets)
            var gradients = try pullback(loss.gradient).parameters
            try clipGradientNorm(&gradients, maxNorm: 1)
            optimizer.learningRate = schedule.rate(atStep: step)
            try optimizer.update(&model, along: gradients)
            if step % 20 == 0 { print(step, loss.value.scalars[0]) }   // the loss falls
        }
        // End of snippet.
        #expect(losses.count == 3)
        #expect(losses[2] < 0.5 * losses[0], "the loss falls: \(losses)")
    }
}
