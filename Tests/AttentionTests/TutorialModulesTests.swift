import Foundation
import Testing
@testable import Attention

extension KernelTests {
    @Suite("Tutorial modules: SelfAttention, CrossAttention, CausalSelfAttention, MultiHeadAttentionWrapper")
    struct TutorialModulesTests {
        // MARK: Fixtures

        @Test func selfAttentionMatchesTheTutorial() throws {
            let fixture = try ModuleFixture("tutorial_self_attention")
            var rng = SeededGenerator(seed: 0)
            var attention = try SelfAttention(dIn: 6, dOutKQ: 4, dOutV: 5, using: &rng)
            try attention.loadParameters(from: fixture.file, prefix: "param.")
            expectFixtureClose(try attention(fixture.tensor("input.x")), try fixture.tensor("output.out"))
        }

        @Test func crossAttentionMatchesTheTutorial() throws {
            let fixture = try ModuleFixture("tutorial_cross_attention")
            var rng = SeededGenerator(seed: 0)
            var attention = try CrossAttention(dIn: 6, dOutKQ: 4, dOutV: 5, using: &rng)
            try attention.loadParameters(from: fixture.file, prefix: "param.")
            let out = try attention(fixture.tensor("input.x_1"), fixture.tensor("input.x_2"))
            expectFixtureClose(out, try fixture.tensor("output.out"))
        }

        @Test func causalSelfAttentionMatchesTheTutorial() throws {
            let fixture = try ModuleFixture("tutorial_causal_self_attention")
            let formula = try #require(try fixture.config["formula"] as? String)
            #expect(formula.contains("-inf for j > i"))   // masked before the softmax, top-left
            var rng = SeededGenerator(seed: 0)
            var attention = try CausalSelfAttention(dIn: 6, dOutKQ: 4, dOutV: 5, using: &rng)
            try attention.loadParameters(from: fixture.file, prefix: "param.")
            let x = try fixture.tensor("input.x")
            expectFixtureClose(try attention(x), try fixture.tensor("output.out"))
            let weights = try attention.callWithWeights(x).weights!
            expectFixtureClose(weights, try fixture.tensor("output.weights"))
            // Exactly zero above the diagonal; rows sum to 1.
            for i in 0 ..< 6 {
                for j in i + 1 ..< 6 { #expect(weights[i, j] == 0) }
                #expect(abs((0 ..< 6).reduce(Float(0)) { $0 + weights[i, $1] } - 1) < 1e-6)
            }
        }

        @Test func multiHeadAttentionWrapperMatchesTheTutorial() throws {
            let fixture = try ModuleFixture("tutorial_mha_wrapper")
            var rng = SeededGenerator(seed: 0)
            var attention = try MultiHeadAttentionWrapper(dIn: 6, dOutKQ: 4, dOutV: 5, heads: 3, using: &rng)
            try attention.loadParameters(from: fixture.file, prefix: "param.")
            let x = try fixture.tensor("input.x")
            let out = try attention(x)
            expectFixtureClose(out, try fixture.tensor("output.out"))
            // The concatenation of the heads, each computed on its own.
            let perHead = try Tensor.concatenated(attention.heads.map { try $0(x) }, axis: -1)
            expectFixtureClose(out, perHead, rtol: 1e-6, atol: 1e-6)
        }

        // MARK: Semantics

        /// The tutorial's other order (softmax, zero the future, renormalise) agrees with masking
        /// before the softmax in exact arithmetic (REFERENCE.md §7).
        @Test func maskingBeforeTheSoftmaxEqualsRenormalising() throws {
            let fixture = try ModuleFixture("tutorial_causal_self_attention")
            var rng = SeededGenerator(seed: 0)
            var plain = try SelfAttention(dIn: 6, dOutKQ: 4, dOutV: 5, using: &rng)
            try plain.loadParameters(from: fixture.file, prefix: "param.")
            let causal = try CausalSelfAttention(
                queryWeight: plain.queryWeight, keyWeight: plain.keyWeight, valueWeight: plain.valueWeight)
            let x = try fixture.tensor("input.x")
            let full = try plain.callWithWeights(x).weights!
            var renormalised = [Float](repeating: 0, count: 36)
            for i in 0 ..< 6 {
                let kept = (0 ... i).reduce(0.0) { $0 + Double(full[i, $1]) }
                for j in 0 ... i { renormalised[i * 6 + j] = Float(Double(full[i, j]) / kept) }
            }
            expectFixtureClose(try causal.callWithWeights(x).weights!, try Tensor(shape: [6, 6], scalars: renormalised), rtol: 1e-5, atol: 1e-6)
        }

        @Test func batchedEqualsEachExampleUnbatched() throws {
            var rng = SeededGenerator(seed: 21)
            let selfAttention = try SelfAttention(dIn: 5, dOutKQ: 3, dOutV: 4, using: &rng)
            let causal = try CausalSelfAttention(dIn: 5, dOutKQ: 3, dOutV: 4, using: &rng)
            let cross = try CrossAttention(dIn: 5, dOutKQ: 3, dOutV: 4, using: &rng)
            let wrapper = try MultiHeadAttentionWrapper(dIn: 5, dOutKQ: 3, dOutV: 4, heads: 3, using: &rng)
            let x = try Tensor(randomNormal: [3, 7, 5], using: &rng)
            let context = try Tensor(randomNormal: [3, 9, 5], using: &rng)
            let batched = [
                try selfAttention(x), try causal(x), try cross(x, context), try wrapper(x),
                try selfAttention.callWithWeights(x).weights!, try causal.callWithWeights(x).weights!, try cross.callWithWeights(x, context).weights!,
            ]
            #expect(batched.map(\.shape) == [[3, 7, 4], [3, 7, 4], [3, 7, 4], [3, 7, 12], [3, 7, 7], [3, 7, 7], [3, 7, 9]])
            for b in 0 ..< 3 {
                let (xb, cb) = (try batchElement(x, b), try batchElement(context, b))
                let unbatched = [
                    try selfAttention(xb), try causal(xb), try cross(xb, cb), try wrapper(xb),
                    try selfAttention.callWithWeights(xb).weights!, try causal.callWithWeights(xb).weights!,
                    try cross.callWithWeights(xb, cb).weights!,
                ]
                for (index, (all, one)) in zip(batched, unbatched).enumerated() {
                    expectFixtureClose(try batchElement(all, b), one, rtol: 1e-6, atol: 1e-6, "output \(index), example \(b)")
                }
            }
        }

        @Test func weightsAreTheSoftmaxOfTheScaledScores() throws {
            // A double-precision reference of the tutorial's formula, cross-attention with L != S.
            var rng = SeededGenerator(seed: 22)
            let attention = try CrossAttention(dIn: 4, dOutKQ: 3, dOutV: 2, using: &rng)
            let x1 = try Tensor(randomNormal: [5, 4], using: &rng), x2 = try Tensor(randomNormal: [8, 4], using: &rng)
            func matmul(_ a: Tensor, _ w: Tensor) -> [[Double]] {
                (0 ..< a.shape[0]).map { i in
                    (0 ..< w.shape[1]).map { c in (0 ..< w.shape[0]).reduce(0.0) { $0 + Double(a[i, $1]) * Double(w[$1, c]) } }
                }
            }
            let (q, k, v) = (matmul(x1, attention.queryWeight), matmul(x2, attention.keyWeight), matmul(x2, attention.valueWeight))
            var weights: [Double] = [], out: [Double] = []
            for i in 0 ..< 5 {
                let scores = (0 ..< 8).map { j in (0 ..< 3).reduce(0.0) { $0 + q[i][$1] * k[j][$1] } / 3.0.squareRoot() }
                let top = scores.max()!
                let e = scores.map { exp($0 - top) }
                let w = e.map { $0 / e.reduce(0, +) }
                weights += w
                out += (0 ..< 2).map { c in (0 ..< 8).reduce(0.0) { $0 + w[$1] * v[$1][c] } }
            }
            expectFixtureClose(
                try attention.callWithWeights(x1, x2).weights!, try Tensor(shape: [5, 8], scalars: weights.map(Float.init)),
                rtol: 1e-5, atol: 1e-6)
            expectFixtureClose(try attention(x1, x2), try Tensor(shape: [5, 2], scalars: out.map(Float.init)), rtol: 1e-5, atol: 1e-5)
        }

        // MARK: Initialisation and parameters

        @Test func initialisationIsTorchRand() throws {
            var rng = SeededGenerator(seed: 23)
            let wrapper = try MultiHeadAttentionWrapper(dIn: 64, dOutKQ: 48, dOutV: 40, heads: 4, using: &rng)
            #expect(wrapper.parameterShapes.map(\.name) == (0 ..< 4).flatMap { ["heads.\($0).W_query", "heads.\($0).W_key", "heads.\($0).W_value"] })
            #expect(wrapper.parameterShapes.map(\.shape) == Array(repeating: [[64, 48], [64, 48], [64, 40]], count: 4).flatMap { $0 })
            let values = wrapper.namedParameters.flatMap { $0.tensor.scalars }
            #expect(values.allSatisfy { $0 >= 0 && $0 < 1 })
            // U[0, 1): mean 1/2, variance 1/12, fourth central moment 1/80.
            expectMoments(values, mean: 0.5, variance: 1.0 / 12, fourthMoment: 1.0 / 80)
            // Drawn W_query, W_key, W_value, head after head.
            var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5)
            let pair = try MultiHeadAttentionWrapper(dIn: 3, dOutKQ: 2, dOutV: 4, heads: 2, using: &a)
            let first = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &b)
            let second = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &b)
            #expect(pair.heads == [first, second])
            var c = SeededGenerator(seed: 5)
            #expect(first.queryWeight == (try Tensor(randomUniform: [3, 2], in: 0 ..< 1, using: &c)))
            #expect(first.keyWeight == (try Tensor(randomUniform: [3, 2], in: 0 ..< 1, using: &c)))
            #expect(first.valueWeight == (try Tensor(randomUniform: [3, 4], in: 0 ..< 1, using: &c)))
            #expect((first.dIn, first.dOutKQ, first.dOutV) == (3, 2, 4))
            for names in [
                try CrossAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &c).parameterPaths.map(\.name),
                try CausalSelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &c).parameterPaths.map(\.name),
            ] {
                #expect(names == ["W_query", "W_key", "W_value"])
            }
        }

        // MARK: Errors

        @Test func errors() throws {
            var rng = SeededGenerator(seed: 24)
            for (name, sizes) in [("dIn", (0, 2, 2)), ("dOutKQ", (2, 0, 2)), ("dOutV", (2, 2, -1))] {
                expectModuleError(argument: name) {
                    _ = try SelfAttention(dIn: sizes.0, dOutKQ: sizes.1, dOutV: sizes.2, using: &rng)
                }
                expectModuleError(argument: name) {
                    _ = try CrossAttention(dIn: sizes.0, dOutKQ: sizes.1, dOutV: sizes.2, using: &rng)
                }
                expectModuleError(argument: name) {
                    _ = try CausalSelfAttention(dIn: sizes.0, dOutKQ: sizes.1, dOutV: sizes.2, using: &rng)
                }
                expectModuleError(argument: name) {
                    _ = try MultiHeadAttentionWrapper(dIn: sizes.0, dOutKQ: sizes.1, dOutV: sizes.2, heads: 2, using: &rng)
                }
            }
            expectModuleError(argument: "heads") {
                _ = try MultiHeadAttentionWrapper(dIn: 2, dOutKQ: 2, dOutV: 2, heads: 0, using: &rng)
            }
            expectModuleError(argument: "heads") { _ = try MultiHeadAttentionWrapper(heads: []) }
            // Weights of inconsistent shapes.
            let (w32, w33, w34) = (try Tensor(ones: [3, 2]), try Tensor(ones: [3, 3]), try Tensor(ones: [3, 4]))
            expectModuleError(argument: "W_key") { _ = try SelfAttention(queryWeight: w32, keyWeight: w33, valueWeight: w34) }
            expectModuleError(argument: "W_value") {
                _ = try SelfAttention(queryWeight: w32, keyWeight: w32, valueWeight: Tensor(ones: [2, 4]))
            }
            expectModuleError(argument: "W_query") {
                _ = try SelfAttention(queryWeight: Tensor(ones: [6]), keyWeight: w32, valueWeight: w34)
            }
            let a = try SelfAttention(queryWeight: w32, keyWeight: w32, valueWeight: w34)
            let b = try SelfAttention(queryWeight: w33, keyWeight: w33, valueWeight: w34)
            let c = try SelfAttention(queryWeight: w32, keyWeight: w32, valueWeight: w33)
            expectModuleError(argument: "heads.1.W_query") { _ = try MultiHeadAttentionWrapper(heads: [a, b]) }
            expectModuleError(argument: "heads.2.W_value") { _ = try MultiHeadAttentionWrapper(heads: [a, a, c]) }
            var wrapper = try MultiHeadAttentionWrapper(heads: [a, a])
            wrapper.heads[1].keyWeight = w33
            expectModuleError(argument: "heads.1.W_key") { _ = try wrapper(Tensor(zeros: [4, 3])) }

            // Inputs.
            let attention = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
            let cross = try CrossAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
            let causal = try CausalSelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng)
            for shape in [[3], [4, 2], [1, 1, 4, 3], [2, 4, 4]] {
                let x = try Tensor(zeros: shape)
                expectModuleError(argument: "x") { _ = try attention(x) }
                expectModuleError(argument: "x") { _ = try causal(x) }
                expectModuleError(argument: "x") { _ = try attention.callWithWeights(x).weights! }
                expectModuleError(argument: "x1") { _ = try cross(x, Tensor(zeros: [4, 3])) }
            }
            // Empty sequences follow the library's rule (EmptyShapesTests): empty results, zeros with no key.
            #expect(try attention(Tensor(zeros: [0, 3])).shape == [0, attention.dOutV])
            expectModuleError(argument: "x2") { _ = try cross(Tensor(zeros: [4, 3]), Tensor(zeros: [4, 2])) }
            expectModuleError(argument: "x2") { _ = try cross(Tensor(zeros: [4, 3]), Tensor(zeros: [1, 4, 3])) }
            expectModuleError(argument: "x2") { _ = try cross(Tensor(zeros: [2, 4, 3]), Tensor(zeros: [3, 5, 3])) }
            #expect(try cross(Tensor(zeros: [4, 3]), Tensor(zeros: [0, 3])).scalars.allSatisfy { $0 == 0 })
            _ = try cross(Tensor(zeros: [2, 4, 3]), Tensor(zeros: [2, 5, 3]))
        }
    }
}
