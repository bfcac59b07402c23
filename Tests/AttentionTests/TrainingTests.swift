import Foundation
import Testing

@testable import Attention

@Suite("Losses, optimisers and schedules")
struct TrainingTests {
    @Test func crossEntropyMatchesADoubleReference() throws {
        var rng = SeededGenerator(seed: 31)
        let logits = try Tensor(randomNormal: [4, 5], using: &rng)
        let targets = IndexArray([3, -100, 0, 4])
        let loss = try crossEntropy(logits: logits, targets: targets, labelSmoothing: 0.1)
        let x = logits.scalars.map(Double.init)
        var total = 0.0
        var gradient = [Double](repeating: 0, count: 20)
        for (row, target) in targets.indices.enumerated() where target != -100 {
            let r = Array(x[(row * 5)..<(row * 5 + 5)])
            let m = r.max()!
            let lse = m + log(r.reduce(0) { $0 + exp($1 - m) })
            total += 0.9 * (lse - r[target]) + 0.1 * (lse - r.reduce(0, +) / 5)
            for c in 0..<5 {
                gradient[row * 5 + c] = (exp(r[c] - lse) - (c == target ? 0.9 : 0) - 0.02) / 3
            }
        }
        #expect(loss.value.shape == [])
        #expect(abs(Double(loss.value.scalars[0]) - total / 3) < 1e-6)
        for (a, b) in zip(loss.gradient.scalars, gradient) { #expect(abs(Double(a) - b) < 1e-6) }
        #expect(throws: AttentionError.invalidArgument(argument: "targets[1]", reason: "7 is not a class in 0..<5 nor ignoreIndex -100")) {
            try crossEntropy(logits: logits, targets: IndexArray([0, 7, 0, 0]))
        }
        #expect(throws: AttentionError.self) { try crossEntropy(logits: logits, targets: IndexArray([0, 1])) }
    }

    /// A consumed, unshared logits tensor receives the gradient in place; a shared one is left as
    /// it was. Both give the same loss and gradient.
    @Test func crossEntropyWritesOverConsumedLogitsOnly() throws {
        var rng = SeededGenerator(seed: 32)
        let logits = try Tensor(randomNormal: [6, 9], using: &rng)
        let before = logits.scalars
        let targets = IndexArray([8, 0, -100, 3, 3, 1])
        let shared = try crossEntropy(logits: logits, targets: targets, labelSmoothing: 0.2)
        #expect(logits.scalars == before)
        let owned = try Tensor(shape: logits.shape, scalars: before)
        let address = owned.storage.buffer.baseAddress
        let inPlace = try crossEntropy(logits: consume owned, targets: targets, labelSmoothing: 0.2)
        #expect(inPlace.value == shared.value && inPlace.gradient == shared.gradient)
        #expect(inPlace.gradient.storage.buffer.baseAddress == address)
    }

    @Test func meanSquaredError() throws {
        let p = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        let t = try Tensor(shape: [2, 2], scalars: [1.5, 2, 2, 6])
        let mean = try Attention.meanSquaredError(prediction: p, target: t)
        let expected: Float = (0.25 + 0 + 1 + 4) / 4
        #expect(mean.value.scalars == [expected])
        #expect(mean.gradient.scalars == [-0.25, 0, 0.5, -1])
        let none = try Attention.meanSquaredError(prediction: p, target: t, reduction: .none)
        #expect(none.value.scalars == [0.25, 0, 1, 4])
        #expect(throws: AttentionError.self) { try Attention.meanSquaredError(prediction: p, target: try Tensor(zeros: [4])) }
    }

    /// Two AdamW steps on a linear layer against the formulas in double.
    @Test func adamWFollowsTorchsFormulas() throws {
        var rng = SeededGenerator(seed: 32)
        var linear = try Linear(inputSize: 3, outputSize: 2, using: &rng)
        let start = linear.weight.scalars.map(Double.init)
        var optimizer = AdamW(learningRate: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: 0.1)
        var expected = start, m = [Double](repeating: 0, count: 6), v = m
        for step in 1...2 {
            let gradient = try Tensor(randomNormal: [2, 3], using: &rng)
            var values = linear
            values.weight = gradient
            values.bias = try Tensor(zeros: [2])
            try optimizer.update(&linear, along: ParameterGradients(values: values))
            for i in 0..<6 {
                let g = Double(gradient.scalars[i])
                expected[i] *= 1 - 0.01 * 0.1
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.99 * v[i] + 0.01 * g * g
                let mHat = m[i] / (1 - pow(0.9, Double(step))), vHat = v[i] / (1 - pow(0.99, Double(step)))
                expected[i] -= 0.01 * mHat / (vHat.squareRoot() + 1e-8)
            }
        }
        #expect(optimizer.step == 2)
        for (a, b) in zip(linear.weight.scalars, expected) { #expect(abs(Double(a) - b) < 1e-6) }
    }

    @Test func nonFiniteGradientsAreReportedNotApplied() throws {
        var rng = SeededGenerator(seed: 33)
        var linear = try Linear(inputSize: 3, outputSize: 2, using: &rng)
        let before = linear
        var gradients = try ParameterGradients(zerosFor: linear)
        try gradients.assign(try Tensor(shape: [2, 3], scalars: [0, 1, .nan, 0, 0, 0]), to: \.weight)
        var optimizer = AdamW()
        #expect(throws: AttentionError.invalidArgument(
            argument: "gradients", reason: "\"weight\" holds 1 NaN or infinite values; the step was not applied")) {
            try optimizer.update(&linear, along: gradients)
        }
        #expect(linear == before)
        #expect(optimizer.step == 0)
        #expect(throws: AttentionError.self) { try clipGradientNorm(&gradients, maxNorm: 1) }
        #expect(throws: AttentionError.self) { try gradients.assign(try Tensor(zeros: [3, 2]), to: \.weight) }
    }

    @Test func clippingScalesToTheNorm() throws {
        var rng = SeededGenerator(seed: 34)
        let linear = try Linear(inputSize: 2, outputSize: 2, using: &rng)
        var gradients = try ParameterGradients(zerosFor: linear)
        try gradients.assign(try Tensor(shape: [2, 2], scalars: [3, 0, 0, 0]), to: \.weight)
        try gradients.assign(try Tensor(shape: [2], scalars: [4, 0]), to: \.bias!)
        let norm = try clipGradientNorm(&gradients, maxNorm: 1)
        #expect(norm == 5)
        let scale = Float(1) / (5 + 1e-6)
        #expect(gradients["weight"]?.scalars == [3 * scale, 0, 0, 0])
        #expect(gradients["bias"]?.scalars == [4 * scale, 0])
    }

    @Test func stateRoundTripResumesTraining() throws {
        var rng = SeededGenerator(seed: 35)
        var a = try Linear(inputSize: 3, outputSize: 2, using: &rng)
        let grads = try (0..<3).map { _ in
            var values = a
            (values.weight, values.bias) = (try Tensor(randomNormal: [2, 3], using: &rng), try Tensor(randomNormal: [2], using: &rng))
            return ParameterGradients(values: values)
        }
        var b = a
        var first = AdamW(learningRate: 0.1, amsgrad: true)
        var second = AdamW(learningRate: 0.1, amsgrad: true)
        try first.update(&a, along: grads[0])
        try second.update(&b, along: grads[0])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("adamw-state-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try second.saveState(to: url)
        var resumed = AdamW(learningRate: 0.1, amsgrad: true)
        try resumed.loadState(from: url)
        #expect(resumed.step == 1)
        for gradient in grads.dropFirst() {
            try first.update(&a, along: gradient)
            try resumed.update(&b, along: gradient)
        }
        #expect(a == b)
        var sgd = SGD(learningRate: 0.1, momentum: 0.9)
        #expect(throws: AttentionError.self) { try sgd.loadState(from: url) }
    }

    @Test func warmupThenCosine() throws {
        let schedule = try LearningRateSchedule(peak: 1, warmupSteps: 2, totalSteps: 6)
        #expect(schedule.rate(atStep: 0) == 0)
        #expect(schedule.rate(atStep: 1) == 0.5)
        #expect(schedule.rate(atStep: 2) == 1)
        #expect(abs(schedule.rate(atStep: 4) - 0.5) < 1e-6)
        #expect(schedule.rate(atStep: 6) == 0)
        #expect(schedule.rate(atStep: 60) == 0)
        #expect(throws: AttentionError.self) { try LearningRateSchedule(peak: 1, warmupSteps: 3, totalSteps: 2) }
    }

    @Test func sgdWithMomentum() throws {
        var rng = SeededGenerator(seed: 36)
        var linear = try Linear(inputSize: 2, outputSize: 1, bias: false, using: &rng)
        let w0 = linear.weight.scalars
        var optimizer = SGD(learningRate: 0.5, momentum: 0.9, dampening: 0.1)
        var values = linear
        values.weight = try Tensor(shape: [1, 2], scalars: [1, -2])
        let gradients = ParameterGradients(values: values)
        try optimizer.update(&linear, along: gradients)
        try optimizer.update(&linear, along: gradients)
        // buf₁ = g, buf₂ = 0.9 g + 0.9 g: the parameter moves by 0.5 (g + 1.8 g).
        let g: [Float] = [1, -2]
        for i in 0..<2 { #expect(abs(linear.weight.scalars[i] - (w0[i] - 0.5 * 2.8 * g[i])) < 1e-6) }
    }
}
