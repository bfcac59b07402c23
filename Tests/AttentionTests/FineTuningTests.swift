import Testing

@testable import Attention

/// A sequence classifier: a transformer encoder, the mean over the positions, a linear head
/// (the model of `train_encoder_finetune`).
private struct SequenceClassifier: DifferentiableLayer {
    var encoder: TransformerEncoder
    var head: Linear

    var parameterPaths: [ParameterPath<SequenceClassifier>] {
        parameterPaths(of: \.encoder, prefixedBy: "encoder") + parameterPaths(of: \.head, prefixedBy: "head")
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor { try callWithPullback(x).output }

    func callWithPullback(_ x: Tensor) throws -> (output: Tensor, pullback: LayerPullback<SequenceClassifier>) {
        let (encoded, encoderPullback) = try encoder.callWithPullback(x)
        let (batch, length, width) = (encoded.shape[0], encoded.shape[1], encoded.shape[2])
        let pooled = try meanOverPositions(encoded)
        let (logits, headPullback) = try head.callWithPullback(pooled)
        return (logits, LayerPullback(self, outputShape: logits.shape) { dLogits in
            let head = try headPullback(dLogits)
            // The mean's gradient: each position gets the pooled gradient over L.
            let dPooled = head.input.scalars
            let dEncoded = try Tensor(shape: [batch, length, width], scalars: (0..<(batch * length * width)).map {
                dPooled[($0 / (length * width)) * width + $0 % width] / Float(length)
            })
            let encoder = try encoderPullback(dEncoded)
            var parameters = try ParameterGradients(zerosFor: self)
            parameters.assign(head.parameters, to: \.head)
            parameters.assign(encoder.parameters, to: \.encoder)
            return LayerGradients(parameters: parameters, input: encoder.input)
        })
    }

    /// `(B, L, E)` → `(B, E)`, the mean over L in double, rounded once.
    private func meanOverPositions(_ x: Tensor) throws -> Tensor {
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let values = x.scalars
        return try Tensor(shape: [batch, width], scalars: (0..<(batch * width)).map { index in
            let (b, c) = (index / width, index % width)
            return Float((0..<length).reduce(0.0) { $0 + Double(values[(b * length + $1) * width + c]) } / Double(length))
        })
    }
}

extension KernelTests {
    @Suite("Fine-tuning against PyTorch")
    struct FineTuningTests {
        /// 40 AdamW steps of a 2-layer encoder classifier from PyTorch's initial weights on its
        /// batches: the loss falls and follows PyTorch's curve step by step.
        @Test func lossCurveMatchesPyTorch() throws {
            let fixture = try TorchFixture("train_encoder_finetune")
            var rng = SeededGenerator(seed: 0)
            let layers = try (0..<2).map { _ in
                try TransformerEncoderLayer(dModel: 32, heads: 4, feedForwardSize: 64, dropout: 0, batchFirst: true, using: &rng)
            }
            var model = SequenceClassifier(
                encoder: try TransformerEncoder(layers: layers, norm: LayerNorm(size: 32)),
                head: try Linear(inputSize: 32, outputSize: 4, using: &rng))
            try model.loadParameters(from: fixture.file, prefix: "param.")
            var optimizer = AdamW(learningRate: 3e-3, weightDecay: 0.01)
            let steps = try fixture.int("steps")
            var losses: [Float] = []
            for step in 0..<steps {
                let x = try fixture.tensor("input.x.\(step)")
                let targets = IndexArray(try fixture.tensor("input.targets.\(step)").scalars.map { Int($0) })
                let (logits, pullback) = try model.callWithPullback(x)
                let loss = try crossEntropy(logits: logits, targets: targets)
                try optimizer.update(&model, along: try pullback(loss.gradient).parameters)
                let expected: Float = try fixture.tensor("output.loss.\(step)").scalars[0]
                let actual: Float = loss.value.scalars[0]
                losses.append(actual)
                let error: Float = abs(actual - expected)
                #expect(error <= 1e-4 * abs(expected), "step \(step): \(actual) vs PyTorch \(expected)")
            }
            let (first, last): (Float, Float) = (losses.prefix(5).reduce(0, +), losses.suffix(5).reduce(0, +))
            #expect(last < 0.7 * first, "the loss falls: \(losses)")
            for (name, tensor) in model.namedParameters {
                var (actual, expected) = (tensor, try fixture.tensor("output.final.\(name)"))
                if name.hasSuffix("self_attn.in_proj_bias") {
                    // The key bias shifts every score of a row alike, so its gradient is zero up to
                    // rounding, and AdamW turns that noise into steps of about lr in either
                    // framework: only the query's and the value's thirds are compared.
                    let parts = [0..<32, 64..<96]
                    actual = try Tensor.concatenated(parts.map { try actual.sliced($0) }, axis: 0)
                    expected = try Tensor.concatenated(parts.map { try expected.sliced($0) }, axis: 0)
                }
                expectFixtureClose(actual, expected, rtol: 1e-3, atol: 1e-4, "final \(name)")
            }
        }
    }
}
