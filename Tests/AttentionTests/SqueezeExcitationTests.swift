import Foundation
import Testing
import Attention

extension KernelTests {
    @Suite("SqueezeExcitation")
    struct SqueezeExcitationTests {
        static func loaded(_ fixture: TorchFixture) throws -> SqueezeExcitation {
            var rng = SeededGenerator(seed: 0)
            var se = try SqueezeExcitation(
                inputChannels: fixture.int("input_channels"), squeezeChannels: fixture.int("squeeze_channels"), using: &rng)
            try se.loadParameters(from: fixture.file, prefix: "param.")
            return se
        }

        @Test(arguments: [("noxton_se_default", Activation.relu), ("noxton_se_silu", .silu), ("noxton_se_batched", .relu)])
        func matchesNoxton(name: String, activation: Activation) throws {
            let fixture = try TorchFixture(name)
            #expect(try fixture.string("activation") == activation.rawValue)
            let se = try Self.loaded(fixture)
            let x = try fixture.tensor("input.x")
            let expected = try fixture.tensor("output.out")
            expectFixtureClose(try se(x, activation: activation), expected)
            // The same through the stored property.
            var configured = se
            configured.activation = activation
            #expect(try configured(x) == se(x, activation: activation))
        }

        /// The block computed with plain loops in double precision.
        static func reference(_ se: SqueezeExcitation, _ x: Tensor) -> [Double] {
            let (c, s) = (se.inputChannels, se.squeezeChannels)
            let plane = x.shape[x.rank - 1] * x.shape[x.rank - 2]
            let values = x.scalars.map(Double.init)
            let w1 = se.fc1Weight.scalars.map(Double.init), b1 = se.fc1Bias.scalars.map(Double.init)
            let w2 = se.fc2Weight.scalars.map(Double.init), b2 = se.fc2Bias.scalars.map(Double.init)
            var result = [Double](repeating: 0, count: values.count)
            for n in 0..<(values.count / (c * plane)) {
                let pooled = (0..<c).map { ch in
                    (0..<plane).reduce(0.0) { $0 + values[(n * c + ch) * plane + $1] } / Double(plane)
                }
                let hidden = (0..<s).map { o in max(0, b1[o] + (0..<c).reduce(0.0) { $0 + w1[o * c + $1] * pooled[$1] }) }
                for ch in 0..<c {
                    let z = b2[ch] + (0..<s).reduce(0.0) { $0 + w2[ch * s + $1] * hidden[$1] }
                    let scale = 1 / (1 + exp(-z))
                    for p in 0..<plane { result[(n * c + ch) * plane + p] = scale * values[(n * c + ch) * plane + p] }
                }
            }
            return result
        }

        @Test(arguments: [[6, 4, 5], [3, 6, 1, 7], [2, 6, 9, 9], [1, 6, 1, 1]])
        func matchesDoublePrecision(shape: [Int]) throws {
            var rng = SeededGenerator(seed: UInt64(shape.reduce(1, *)))
            let se = try SqueezeExcitation(inputChannels: 6, squeezeChannels: 3, using: &rng)
            let x = try Tensor(randomNormal: shape, using: &rng)
            let y = try se(x)
            #expect(y.shape == shape)
            let expected = Self.reference(se, x)
            for (a, e) in zip(y.scalars, expected) { #expect(abs(Double(a) - e) <= 1e-5 + 1e-5 * abs(e)) }
        }

        @Test func batchedEqualsPerExample() throws {
            var rng = SeededGenerator(seed: 3)
            let se = try SqueezeExcitation(inputChannels: 8, squeezeChannels: 2, scaleActivation: .tanh, using: &rng)
            let x = try Tensor(randomNormal: [4, 8, 3, 5], using: &rng)
            let batched = try se(x)
            for n in 0..<4 {
                #expect(try se(torchTestSlice(x, n, axis: 0)) == torchTestSlice(batched, n, axis: 0))
            }
        }

        @Test func emptyMapsPassThrough() throws {
            var rng = SeededGenerator(seed: 4)
            let se = try SqueezeExcitation(inputChannels: 8, squeezeChannels: 2, using: &rng)
            #expect(try se(Tensor(zeros: [8, 0, 5])).shape == [8, 0, 5])
            #expect(try se(Tensor(zeros: [0, 8, 2, 2])).shape == [0, 8, 2, 2])
        }

        @Test func initialisationIsConv2dDefault() throws {
            var rng = SeededGenerator(seed: 5)
            let (c, s) = (512, 128)
            let se = try SqueezeExcitation(inputChannels: c, squeezeChannels: s, using: &rng)
            #expect(se.parameterShapes.map(\.name) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
            #expect(se.parameterShapes.map(\.shape) == [[s, c, 1, 1], [s, 1, 1], [c, s, 1, 1], [c, 1, 1]])
            #expect(se.inputChannels == c && se.squeezeChannels == s)
            for (values, fanIn) in [
                (se.fc1Weight.scalars, c), (se.fc1Bias.scalars, c), (se.fc2Weight.scalars, s), (se.fc2Bias.scalars, s),
            ] {
                let limit = 1 / Double(fanIn).squareRoot()
                #expect(values.allSatisfy { abs(Double($0)) <= limit })
                expectMoments(values, mean: 0, variance: limit * limit / 3, fourthMoment: pow(limit, 4) / 5)
            }
        }

        @Test func errors() throws {
            var rng = SeededGenerator(seed: 6)
            #expect(expectAttentionError { _ = try SqueezeExcitation(inputChannels: 0, squeezeChannels: 2, using: &rng) }?
                .argument == "inputChannels")
            #expect(expectAttentionError { _ = try SqueezeExcitation(inputChannels: 4, squeezeChannels: 0, using: &rng) }?
                .argument == "squeezeChannels")
            let se = try SqueezeExcitation(inputChannels: 4, squeezeChannels: 2, using: &rng)
            for shape in [[4, 5], [3, 5, 5], [2, 3, 5, 5], [1, 2, 4, 5, 5], [4]] {
                let error = expectAttentionError { _ = try se(Tensor(zeros: shape)) }
                #expect(error?.argument == "input" && error?.isShapeMismatch == true, "\(shape)")
            }
            var broken = se
            broken.fc2Bias = try Tensor(zeros: [4])   // torchvision's layout, not Equinox's
            #expect(expectAttentionError { _ = try broken(Tensor(zeros: [4, 2, 2])) }?.argument == "fc2Bias")
            broken = se
            broken.fc1Weight = try Tensor(zeros: [2, 4])
            #expect(expectAttentionError { _ = try broken(Tensor(zeros: [4, 2, 2])) }?.argument == "fc1Weight")
            // A torchvision checkpoint's (out,) biases are reported, not misread.
            var file = try SafeTensors(se.parameterDictionary(prefix: ""))
            try file.insert(Tensor(zeros: [2]), named: "fc1.bias")
            var target = se
            let mismatch = expectAttentionError { try target.loadParameters(from: file) }
            guard case let .checkpointMismatch(_, _, shapes)? = mismatch else {
                Issue.record("expected a checkpoint mismatch, got \(String(describing: mismatch))")
                return
            }
            #expect(shapes.map(\.name) == ["fc1.bias"])
        }
    }
}
