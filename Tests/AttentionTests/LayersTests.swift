import Foundation
import Testing
@testable import Attention

/// The mean and (population) variance of samples, in `Double`.
func moments(_ values: [Float]) -> (mean: Double, variance: Double) {
    let n = Double(values.count)
    let mean = values.reduce(0.0) { $0 + Double($1) } / n
    let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
    return (mean, variance)
}

/// Checks the sample mean and variance of `values` against a distribution's, within `sigmas`
/// standard errors (the variance's standard error from the fourth central moment `mu4`).
func expectMoments(
    _ values: [Float], mean: Double, variance: Double, fourthMoment mu4: Double, sigmas: Double = 6,
    _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    let n = Double(values.count)
    let sample = moments(values)
    let meanError = (variance / n).squareRoot()
    let varianceError = ((mu4 - variance * variance) / n).squareRoot()
    #expect(abs(sample.mean - mean) <= sigmas * meanError, "mean \(sample.mean) vs \(mean). \(comment?.rawValue ?? "")",
            sourceLocation: sourceLocation)
    #expect(abs(sample.variance - variance) <= sigmas * varianceError,
            "variance \(sample.variance) vs \(variance). \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
}

@Suite("Layers")
struct LayersTests {
    // MARK: Linear

    func referenceLinear(_ x: Tensor, _ layer: Linear) -> [Double] {
        let (outSize, inSize) = (layer.outputSize, layer.inputSize)
        let xs = x.scalars.map(Double.init), w = layer.weight.scalars.map(Double.init)
        let b = layer.bias?.scalars.map(Double.init)
        let rows = x.count / inSize
        var y = [Double](repeating: 0, count: rows * outSize)
        for r in 0..<rows {
            for o in 0..<outSize {
                var sum = b?[o] ?? 0
                for i in 0..<inSize { sum += xs[r * inSize + i] * w[o * inSize + i] }
                y[r * outSize + o] = sum
            }
        }
        return y
    }

    @Test(arguments: [[7], [3, 7], [2, 3, 7], [2, 1, 5, 7], [0, 7], [130, 7]], [true, false])
    func linearMatchesDoublePrecision(inputShape: [Int], bias: Bool) throws {
        var rng = SeededGenerator(seed: UInt64(inputShape.reduce(1, *)))
        let layer = try Linear(inputSize: 7, outputSize: 5, bias: bias, using: &rng)
        let x = try Tensor(randomNormal: inputShape, using: &rng)
        let y = try layer(x)
        expectClose(y, referenceLinear(x, layer), shape: Array(inputShape.dropLast()) + [5])
    }

    /// Flax's layout: a kernel `(inputs, heads, headSize)` is PyTorch's weight transposed, on the
    /// few-row and packed paths; `(heads, headSize, outputs)` contracts two input axes; one block
    /// of outputs of a packed weight (an in_proj block) is that block's own layer, in both layouts.
    @Test(arguments: [1, 3, 40])
    func linearLayoutsAndOutputBlocks(rows: Int) throws {
        var rng = SeededGenerator(seed: 90 + UInt64(rows))
        let torch = try Linear(inputSize: 6, outputSize: 12, using: &rng)
        let kernel = try torch.weight.transposed().reshaped([6, 3, 4])
        let flax = try Linear(kernel: kernel, bias: torch.bias!.reshaped([3, 4]), inputAxes: 1)
        #expect(flax.parameterShapes.map(\.name) == ["kernel", "bias"] && flax.outputShape == [3, 4])
        let x = try Tensor(randomNormal: [rows, 6], using: &rng)
        let expected = referenceLinear(x, torch)
        expectClose(try flax(x), expected, shape: [rows, 3, 4], rtol: 1e-6, atol: 1e-6)
        let block = 4..<9
        let blockExpected = (0..<rows).flatMap { r in expected[(r * 12 + block.lowerBound)..<(r * 12 + block.upperBound)] }
        expectClose(try torch(x, outputs: block), blockExpected, shape: [rows, 5], rtol: 1e-6, atol: 1e-6)
        let flat = try Linear(kernel: kernel.reshaped([6, 12]), bias: torch.bias, inputAxes: 1)
        expectClose(try flat(x, outputs: block), blockExpected, shape: [rows, 5], rtol: 1e-6, atol: 1e-6)
        let out = try Linear(kernel: Tensor(randomNormal: [3, 4, 5], using: &rng), inputAxes: 2)
        let heads = try Tensor(randomNormal: [rows, 3, 4], using: &rng)
        let asTorch = try Linear(weight: out.weight.reshaped([12, 5]).transposed())
        expectClose(try out(heads), referenceLinear(try heads.reshaped([rows, 12]), asTorch), shape: [rows, 5],
                    rtol: 1e-6, atol: 1e-6)
        #expect(throws: AttentionError.self) { try out(x) }
    }

    /// `linear(x, adding: r)`: the double reference plus `r`, on the few-row and packed paths (40
    /// rows), with and without bias and for a bf16 weight with bf16 products; shapes and dtypes named.
    @Test(arguments: [[3, 7], [40, 7], [2, 0, 7]], [true, false])
    func linearAddingAResidual(inputShape: [Int], bias: Bool) throws {
        var rng = SeededGenerator(seed: 5 + UInt64(inputShape.reduce(1, *)))
        let layer = try Linear(inputSize: 7, outputSize: 5, bias: bias, using: &rng)
        let x = try Tensor(randomNormal: inputShape, using: &rng)
        let outputShape = Array(inputShape.dropLast()) + [5]
        let residual = try Tensor(randomNormal: outputShape, using: &rng)
        let before = residual.scalars
        let y = try layer(x, adding: residual)
        let expected = zip(referenceLinear(x, layer), residual.scalars).map { $0 + Double($1) }
        expectClose(y, expected, shape: outputShape)
        #expect(residual.scalars == before)   // the residual itself is not written
        let half = try layer.convertingWeights(to: .bfloat16)
        expectClose(try half(x, products: .bfloat16, adding: residual),
                    zip(try half(x, products: .bfloat16).scalars, residual.scalars).map { Double($0 + $1) },
                    shape: outputShape, rtol: 1e-5, atol: 1e-5)
        #expect(throws: AttentionError.shapeMismatch(
            argument: "residual", expected: "\(outputShape), the output's shape", actual: [5])) {
            try layer(x, adding: Tensor(zeros: [5]))
        }
        expectUnsupportedDType("residual") { _ = try layer(x, adding: residual.converted(to: .float16)) }
    }

    @Test func linearOfALargeLayerMatches() throws {
        var rng = SeededGenerator(seed: 11)
        let layer = try Linear(inputSize: 96, outputSize: 200, using: &rng)
        let x = try Tensor(randomNormal: [3, 70, 96], using: &rng)
        expectClose(try layer(x), referenceLinear(x, layer), shape: [3, 70, 200])
    }

    @Test func linearInitialisationIsTorchsAndEquinoxs() throws {
        var rng = SeededGenerator(seed: 12)
        let (inSize, outSize) = (64, 4096)
        let layer = try Linear(inputSize: inSize, outputSize: outSize, using: &rng)
        #expect(layer.weight.shape == [outSize, inSize] && layer.bias?.shape == [outSize])
        #expect(layer.parameterShapes.map(\.name) == ["weight", "bias"])
        let limit = 1 / Double(inSize).squareRoot()
        for values in [layer.weight.scalars, layer.bias!.scalars] {
            #expect(values.allSatisfy { abs(Double($0)) <= limit })
            // U(-a, a): variance a²/3, fourth moment a⁴/5.
            expectMoments(values, mean: 0, variance: limit * limit / 3, fourthMoment: pow(limit, 4) / 5)
        }
        // Seeded: the same generator state gives the same layer; weight is drawn before bias.
        var a = SeededGenerator(seed: 1), b = SeededGenerator(seed: 1)
        #expect(try Linear(inputSize: 3, outputSize: 2, using: &a) == Linear(inputSize: 3, outputSize: 2, using: &b))
        var c = SeededGenerator(seed: 1)
        let noBias = try Linear(inputSize: 3, outputSize: 2, bias: false, using: &c)
        #expect(noBias.bias == nil && noBias.parameterShapes.map(\.name) == ["weight"])
        var d = SeededGenerator(seed: 1)
        #expect(try Linear(inputSize: 3, outputSize: 2, using: &d).weight == noBias.weight)
    }

    @Test func linearReportsBadShapes() throws {
        var rng = SeededGenerator(seed: 13)
        #expect(throws: AttentionError.invalidArgument(argument: "inputSize", reason: "must be at least 1, got 0")) {
            try Linear(inputSize: 0, outputSize: 2, using: &rng)
        }
        #expect(throws: AttentionError.self) { try Linear(inputSize: 2, outputSize: -1, using: &rng) }
        #expect(throws: AttentionError.self) { try Linear(weight: Tensor(zeros: [4])) }
        #expect(throws: AttentionError.self) { try Linear(weight: Tensor(zeros: [0, 4])) }
        #expect(throws: AttentionError.shapeMismatch(argument: "bias", expected: "[2] (outputSize) for weight [2, 3]", actual: [3])) {
            try Linear(weight: Tensor(zeros: [2, 3]), bias: Tensor(zeros: [3]))
        }
        var layer = try Linear(weight: Tensor(shape: [2, 3], scalars: [1, 0, 0, 0, 1, 0]), bias: Tensor(shape: [2], scalars: [10, 20]))
        #expect(layer.inputSize == 3 && layer.outputSize == 2)
        #expect(try layer(Tensor(shape: [3], scalars: [1, 2, 3])).scalars == [11, 22])
        #expect(throws: AttentionError.shapeMismatch(argument: "input", expected: "[..., 3] (..., inputSize)", actual: [2, 4])) {
            try layer(Tensor(zeros: [2, 4]))
        }
        #expect(throws: AttentionError.self) { try layer(Tensor(shape: [], scalars: [1])) }
        layer.bias = try Tensor(zeros: [5])   // public and mutable: checked at the call
        #expect(throws: AttentionError.self) { try layer(Tensor(zeros: [3])) }
    }

    // MARK: LayerNorm

    func referenceLayerNorm(_ x: Tensor, _ norm: LayerNorm) -> [Double] {
        let n = norm.size
        let xs = x.scalars.map(Double.init)
        let w = norm.weight?.scalars.map(Double.init), b = norm.bias?.scalars.map(Double.init)
        var y = [Double](repeating: 0, count: xs.count)
        for r in 0..<(xs.count / n) {
            let row = xs[(r * n)..<(r * n + n)]
            let mean = row.reduce(0, +) / Double(n)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            for i in 0..<n {
                y[r * n + i] = (xs[r * n + i] - mean) / (variance + Double(norm.epsilon)).squareRoot() * (w?[i] ?? 1) + (b?[i] ?? 0)
            }
        }
        return y
    }

    @Test(arguments: [LayerNorm.Variance.twoPass, .fast])
    func layerNormMatchesDoublePrecision(variance: LayerNorm.Variance) throws {
        var rng = SeededGenerator(seed: 21)
        for (shape, affine, bias, epsilon) in [
            ([5, 16], true, true, Float(1e-5)), ([2, 3, 33], true, false, 1e-6), ([16], false, false, 1e-5),
            ([4, 1], true, true, 1e-3), ([0, 8], true, true, 1e-5), ([7, 512], true, true, 0),
        ] {
            var norm = try LayerNorm(size: shape.last!, epsilon: epsilon, elementwiseAffine: affine, bias: bias, variance: variance)
            #expect(norm.parameterShapes.map(\.name) == (affine ? (bias ? ["weight", "bias"] : ["weight"]) : []))
            if affine {
                #expect(norm.weight!.scalars.allSatisfy { $0 == 1 })
                norm.weight = try Tensor(randomNormal: [shape.last!], mean: 1, standardDeviation: 0.3, using: &rng)
            }
            if bias && affine {
                #expect(norm.bias!.scalars.allSatisfy { $0 == 0 })
                norm.bias = try Tensor(randomNormal: [shape.last!], standardDeviation: 0.3, using: &rng)
            }
            // Rows with an offset, where the fast variance loses a little precision.
            let x = try Tensor(randomNormal: shape, mean: 2, standardDeviation: 1.5, using: &rng)
            let tolerance = variance == .fast ? 1e-4 : 1e-5
            expectClose(try norm(x), referenceLayerNorm(x, norm), shape: shape, rtol: tolerance, atol: tolerance,
                        "shape \(shape) affine \(affine) bias \(bias) eps \(epsilon)")
        }
    }

    @Test func layerNormReportsBadArguments() throws {
        #expect(throws: AttentionError.self) { try LayerNorm(size: 0) }
        #expect(throws: AttentionError.invalidArgument(argument: "epsilon", reason: "must be finite and non-negative, got -1.0")) {
            try LayerNorm(size: 4, epsilon: -1)
        }
        #expect(throws: AttentionError.self) { try LayerNorm(size: 4, epsilon: .nan) }
        var norm = try LayerNorm(size: 4)
        #expect(throws: AttentionError.shapeMismatch(argument: "input", expected: "[..., 4] (..., size)", actual: [4, 3])) {
            try norm(Tensor(zeros: [4, 3]))
        }
        norm.weight = try Tensor(ones: [3])
        #expect(throws: AttentionError.self) { try norm(Tensor(zeros: [4])) }
    }

    /// RMSNorm against the double formula over odd sizes and leading dimensions; bad shapes named.
    @Test(arguments: [[1], [5], [3, 17], [2, 4, 896]])
    func rmsNormMatchesDoublePrecision(shape: [Int]) throws {
        var rng = SeededGenerator(seed: UInt64(shape.reduce(1, *)))
        let size = shape.last!
        let norm = try RMSNorm(weight: Tensor(randomNormal: [size], using: &rng), epsilon: 1e-6)
        let x = try Tensor(randomNormal: shape, standardDeviation: 3, using: &rng)
        let y = try norm(x)
        #expect(y.shape == shape)
        let (xs, ws) = (x.scalars, norm.weight.scalars)
        var expected: [Double] = []
        for row in stride(from: 0, to: xs.count, by: size) {
            let squares = xs[row..<(row + size)].reduce(0.0) { $0 + Double($1) * Double($1) }
            let inverse = 1 / (squares / Double(size) + 1e-6).squareRoot()
            expected += (0..<size).map { Double(ws[$0]) * Double(xs[row + $0]) * inverse }
        }
        expectClose(y, expected, shape: shape, rtol: 1e-6, atol: 1e-6, "RMSNorm \(shape)")
        #expect(throws: AttentionError.shapeMismatch(argument: "input", expected: "[..., \(size)]", actual: [size + 1])) {
            try norm(Tensor(zeros: [size + 1]))
        }
    }

    // MARK: Activations

    @Test func activationsMatchDoublePrecision() throws {
        var values: [Float] = [-30, -20, -10, -5, -3, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 3, 5, 10, 20, 30]
        var rng = SeededGenerator(seed: 31)
        values += try Tensor(randomNormal: [1000], standardDeviation: 4, using: &rng).scalars
        let x = try Tensor(shape: [values.count], scalars: values)
        let references: [Activation: (Double) -> Double] = [
            .identity: { $0 },
            .relu: { max($0, 0) },
            .gelu: { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) },
            .geluTanh: { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) },
            .sigmoid: { 1 / (1 + exp(-$0)) },
            .silu: { $0 / (1 + exp(-$0)) },
            .tanh: { tanh($0) },
        ]
        for activation in Activation.allCases {
            let expected = values.map { references[activation]!(Double($0)) }
            let y = try activation(x)
            // Absolute tolerance relative to the largest output, plus a relative one.
            expectClose(y, expected, shape: [values.count], rtol: 2e-6, atol: 1e-6, "\(activation)")
            // Small values keep their relative precision too.
            let small = y.scalars.enumerated().filter { abs(values[$0.offset]) < 1 && expected[$0.offset] != 0 }
            let worst = small.map { abs(Double($0.element) - expected[$0.offset]) / abs(expected[$0.offset]) }.max() ?? 0
            #expect(worst < 1e-5, "\(activation): relative error \(worst) near 0")
        }
        // Shapes are kept, empty tensors pass through, a rank-0 tensor works.
        #expect(try Activation.relu(Tensor(zeros: [2, 0, 3])).shape == [2, 0, 3])
        #expect(try Activation.sigmoid(Tensor(shape: [], scalars: [0])).scalars == [0.5])
        #expect(try Activation.gelu(Tensor(zeros: [3, 4])).shape == [3, 4])
        #expect(Activation.silu.parameterPaths.isEmpty)
    }

    /// `gated`: each element is the activation of the gate times the linear half, rounded once
    /// (so `activation(gate) * up` in Float, bitwise), for every activation, odd widths, leading
    /// dimensions and empty inputs; an odd or missing last dimension is named.
    @Test func gatedActivationsAreTheActivationTimesTheLinearHalf() throws {
        var rng = SeededGenerator(seed: 32)
        for width in [1, 7, 16, 37] {
            let x = try Tensor(randomNormal: [2, 3, 2 * width], standardDeviation: 3, using: &rng)
            let gate = try x.sliced(0..<width, axis: 2), up = try x.sliced(width..<(2 * width), axis: 2)
            for activation in Activation.allCases {
                let y = try activation.gated(x)
                #expect(y.shape == [2, 3, width])
                let expected = zip(try activation(gate).scalars, up.scalars).map { $0 * $1 }
                #expect(y.scalars == expected, "\(activation), width \(width)")
            }
        }
        #expect(try Activation.silu.gated(Tensor(zeros: [0, 8])).shape == [0, 4])
        #expect(try Activation.silu.gated(Tensor(zeros: [3, 0])).shape == [3, 0])
        #expect(throws: AttentionError.shapeMismatch(
            argument: "input", expected: "[..., 2 · width]: a gate then a linear half", actual: [2, 5])) {
            try Activation.silu.gated(Tensor(zeros: [2, 5]))
        }
        #expect(throws: AttentionError.self) { try Activation.silu.gated(Tensor(shape: [], scalars: [1])) }
    }

    // MARK: Dropout

    @Test func dropoutKeepsTheExpectedFractionScaled() throws {
        let count = 200_000
        let x = try Tensor(repeating: 2, shape: [4, count / 4])
        for p: Float in [0.1, 0.5, 0.9] {
            let dropout = Dropout(probability: p, seed: 1234)
            let y = try dropout(x)
            #expect(y.shape == x.shape)
            let kept = y.scalars.filter { $0 != 0 }
            // Kept elements are exactly x / (1 - p) in Float, as the attention kernels scale.
            #expect(kept.allSatisfy { $0 == 2 * (1 / (1 - p)) })
            let fraction = Double(kept.count) / Double(count)
            let error = (Double(p) * (1 - Double(p)) / Double(count)).squareRoot()
            #expect(abs(fraction - (1 - Double(p))) <= 6 * error, "p \(p): kept \(fraction)")
        }
    }

    @Test func dropoutIsDeterministicAndUsesTheKernelsHash() throws {
        var rng = SeededGenerator(seed: 41)
        let x = try Tensor(randomNormal: [3, 50], using: &rng)
        let dropout = Dropout(probability: 0.3, seed: 77, offset: 5)
        let first = try dropout(x), second = try dropout(x)
        #expect(first == second)
        #expect(try Dropout(probability: 0.3, seed: 78, offset: 5)(x) != first)
        #expect(try Dropout(probability: 0.3, seed: 77, offset: 6)(x) != first)
        // Element i is kept when the splitmix64 hash of (seed, offset + i) clears the threshold.
        let threshold = dropoutThreshold(0.3)
        for (index, (input, output)) in zip(x.scalars, first.scalars).enumerated() {
            let keep = dropoutBits(seed: 77, counter: 5 + UInt64(index)) >= threshold
            #expect(output == (keep ? input * (1 / (1 - Float(0.3))) : 0))
        }
        // Offsets index the same stream: the tail of a call at offset 0 is a call at offset k.
        let tail = try x.reshaped([150]).sliced(40..<150)
        #expect(try Dropout(probability: 0.3, seed: 77, offset: 45)(tail) == first.reshaped([150]).sliced(40..<150))
        // Inference, and p = 0, pass the input through.
        #expect(try dropout(x, inference: true) == x)
        #expect(try Dropout(probability: 0, seed: 1)(x) == x)
        #expect(dropout.parameterPaths.isEmpty)
        for p: Float in [-0.1, 1, 1.5, .nan] {
            #expect(throws: AttentionError.self) { try Dropout(probability: p, seed: 0)(x) }
        }
    }

    // MARK: Initialisers

    @Test func initialisersHaveTheReferenceMoments() throws {
        var rng = SeededGenerator(seed: 51)
        let shape = [512, 512]

        let uniform = try Tensor.uniform(shape, limit: 0.5, using: &rng).scalars
        #expect(uniform.allSatisfy { abs($0) <= 0.5 })
        expectMoments(uniform, mean: 0, variance: 0.25 / 3, fourthMoment: pow(0.5, 4) / 5, "uniform")

        // Xavier uniform for torch's in_proj_weight (3E, E): a = √(6 / (E + 3E)).
        let (fanIn, fanOut) = (64, 192)
        let xavierU = try Tensor.xavierUniform(shape, fanIn: fanIn, fanOut: fanOut, using: &rng).scalars
        let a = (6.0 / Double(fanIn + fanOut)).squareRoot()
        #expect(xavierU.allSatisfy { abs(Double($0)) <= a * (1 + 1e-6) })
        expectMoments(xavierU, mean: 0, variance: a * a / 3, fourthMoment: pow(a, 4) / 5, "xavierUniform")
        let gained = try Tensor.xavierUniform(shape, fanIn: fanIn, fanOut: fanOut, gain: 2, using: &rng).scalars
        expectMoments(gained, mean: 0, variance: 4 * a * a / 3, fourthMoment: 16 * pow(a, 4) / 5, "xavierUniform gain 2")

        // Xavier normal: N(0, 2 / (fanIn + fanOut)); for bias_k (1, 1, E), 1/E.
        let xavierN = try Tensor.xavierNormal(shape, fanIn: 32, fanOut: 32, using: &rng).scalars
        expectMoments(xavierN, mean: 0, variance: 1.0 / 32, fourthMoment: 3.0 / (32 * 32), "xavierNormal")

        let normal = try Tensor.normal(shape, standardDeviation: 0.01, using: &rng).scalars
        expectMoments(normal, mean: 0, variance: 1e-4, fourthMoment: 3e-8, "normal")

        // Standard normal truncated to [-2, 2]: variance 0.87962566103423978², fourth moment
        // (3Φ-mass - 2·φ(2)·(2³ + 3·2)) / mass.
        let mass = erf(2 / 2.0.squareRoot())
        let density = exp(-2.0) / (2 * Double.pi).squareRoot()
        let truncatedVariance = 1 - 2 * 2 * density / mass
        #expect(abs(truncatedVariance.squareRoot() - 0.87962566103423978) < 1e-12)
        let truncatedFourth = 3 - 2 * density * (8 + 3 * 2) / mass
        let truncated = try Tensor.truncatedNormal(shape, using: &rng).scalars
        #expect(truncated.allSatisfy { abs($0) <= 2 })
        expectMoments(truncated, mean: 0, variance: truncatedVariance, fourthMoment: truncatedFourth, "truncatedNormal")

        // LeCun normal (Flax's default kernel init): variance exactly 1/fanIn.
        let lecun = try Tensor.lecunNormal([64, 8, 512], fanIn: 64, using: &rng).scalars
        let scale = (1.0 / 64).squareRoot() / 0.87962566103423978
        #expect(lecun.allSatisfy { abs(Double($0)) <= 2 * scale * (1 + 1e-6) })
        expectMoments(lecun, mean: 0, variance: 1.0 / 64, fourthMoment: truncatedFourth * pow(scale, 4), "lecunNormal")
        // Truncation happens: values reach close to the bound.
        #expect(lecun.map { abs(Double($0)) }.max()! > 1.95 * scale)

        // Seeded and shaped.
        var s1 = SeededGenerator(seed: 9), s2 = SeededGenerator(seed: 9)
        #expect(try Tensor.lecunNormal([3, 4], fanIn: 3, using: &s1) == Tensor.lecunNormal([3, 4], fanIn: 3, using: &s2))
        #expect(try Tensor.lecunNormal([3, 4], fanIn: 3, using: &s1).shape == [3, 4])
    }

    @Test func initialisersReportBadArguments() {
        var rng = SeededGenerator(seed: 52)
        #expect(throws: AttentionError.self) { try Tensor.uniform([2], limit: 0, using: &rng) }
        #expect(throws: AttentionError.self) { try Tensor.uniform([2], limit: .infinity, using: &rng) }
        #expect(throws: AttentionError.self) { try Tensor.xavierUniform([2], fanIn: 0, fanOut: 2, using: &rng) }
        #expect(throws: AttentionError.self) { try Tensor.xavierNormal([2], fanIn: 2, fanOut: 2, gain: -1, using: &rng) }
        #expect(throws: AttentionError.self) { try Tensor.lecunNormal([2], fanIn: 0, using: &rng) }
        #expect(throws: AttentionError.self) { try Tensor.truncatedNormal([2], lower: 1, upper: 1, using: &rng) }
        #expect(throws: AttentionError.self) { try Tensor.truncatedNormal([2], lower: 7.9, upper: 8, using: &rng) }
        #expect(throws: AttentionError.self) { try Tensor.normal([-1], standardDeviation: 1, using: &rng) }
        #expect(throws: Never.self) { try Tensor.truncatedNormal([100], lower: 0, upper: 0.1, using: &rng) }
    }

    // MARK: Tensor glue

    @Test func elementWiseOperations() throws {
        let a = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        let b = try Tensor(shape: [2, 2], scalars: [10, 20, 30, 40])
        #expect(try a.adding(b).scalars == [11, 22, 33, 44])
        #expect(try a.scaled(by: -0.5).scalars == [-0.5, -1, -1.5, -2])
        #expect(throws: AttentionError.self) { try a.adding(Tensor(zeros: [4])) }
        #expect(try Tensor(zeros: [0, 3]).adding(Tensor(zeros: [0, 3])).shape == [0, 3])
    }

    @Test func permutationsMatchIndexArithmetic() throws {
        let shape = [2, 3, 4, 5]
        let x = try Tensor(shape: shape, scalars: (0..<120).map(Float.init))
        for axes in [[0, 1, 3, 2], [3, 2, 1, 0], [1, 0, 2, 3], [2, 0, 3, 1], [0, 1, 2, 3], [-1, 0, 1, 2]] {
            let order = axes.map { $0 < 0 ? $0 + 4 : $0 }
            let y = try x.permuted(axes)
            #expect(y.shape == order.map { shape[$0] })
            var expected: [Float] = []
            let newShape = y.shape
            for i in 0..<newShape[0] { for j in 0..<newShape[1] { for k in 0..<newShape[2] { for l in 0..<newShape[3] {
                var source = [0, 0, 0, 0]
                for (position, index) in [i, j, k, l].enumerated() { source[order[position]] = index }
                expected.append(x[source[0], source[1], source[2], source[3]])
            } } } }
            #expect(y.scalars == expected, "\(axes)")
        }
        let m = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(try m.transposed().shape == [3, 2])
        #expect(try m.transposed().scalars == [1, 4, 2, 5, 3, 6])
        #expect(try x.transposed() == x.permuted([0, 1, 3, 2]))
        #expect(try x.transposed().transposed() == x)
        #expect(try Tensor(zeros: [0, 3]).transposed().shape == [3, 0])
        #expect(throws: AttentionError.self) { try Tensor(zeros: [3]).transposed() }
        #expect(throws: AttentionError.self) { try x.permuted([0, 1, 2]) }
        #expect(throws: AttentionError.self) { try x.permuted([0, 1, 2, 2]) }
        #expect(throws: AttentionError.self) { try x.permuted([0, 1, 2, 4]) }
    }

    @Test func slicingAndConcatenation() throws {
        let x = try Tensor(shape: [3, 2, 2], scalars: (0..<12).map(Float.init))
        #expect(try x.sliced(1..<3).scalars == Array(4..<12).map(Float.init))
        #expect(try x.sliced(1..<3).shape == [2, 2, 2])
        #expect(try x.sliced(0..<1, axis: -1).scalars == [0, 2, 4, 6, 8, 10])
        #expect(try x.sliced(1..<2, axis: 1).scalars == [2, 3, 6, 7, 10, 11])
        #expect(try x.sliced(2..<2).shape == [0, 2, 2])
        #expect(throws: AttentionError.self) { try x.sliced(2..<4) }
        #expect(throws: AttentionError.self) { try x.sliced(0..<1, axis: 3) }
        #expect(throws: AttentionError.self) { try Tensor(shape: [], scalars: [1]).sliced(0..<1) }

        // Splitting along any axis and concatenating back gives the original.
        for axis in [0, 1, 2, -1] {
            let size = x.shape[axis < 0 ? axis + 3 : axis]
            let parts = try [0..<1, 1..<1, 1..<size].map { try x.sliced($0, axis: axis) }
            #expect(try Tensor.concatenated(parts, axis: axis) == x, "axis \(axis)")
        }
        let heads = [try Tensor(shape: [2, 1], scalars: [1, 2]), try Tensor(shape: [2, 2], scalars: [3, 4, 5, 6])]
        #expect(try Tensor.concatenated(heads).scalars == [1, 3, 4, 2, 5, 6])
        #expect(try Tensor.concatenated(heads).shape == [2, 3])
        #expect(throws: AttentionError.self) { try Tensor.concatenated([]) }
        #expect(throws: AttentionError.self) { try Tensor.concatenated(heads, axis: 0) }
        #expect(throws: AttentionError.self) { try Tensor.concatenated([x, Tensor(zeros: [3, 2])]) }
    }
}
