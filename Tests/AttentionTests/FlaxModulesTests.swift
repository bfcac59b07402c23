import Foundation
import Testing
import Attention

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Tests of the Flax-style modules: MultiHeadDotProductAttention (against the flax_mhdpa_*
// fixtures of Flax 0.12.8), its decode cache, dotProductAttentionWeights, initialisation,
// dropout and errors.

private typealias MHDPA = MultiHeadDotProductAttention

/// The rtol and atol the module fixtures are compared with.
private let fixtureTolerance = (rtol: 1e-5, atol: 2e-5)

/// A fixture file and its `config` metadata.
struct FlaxFixture {
    let file: SafeTensors
    let config: [String: Any]

    init(_ name: String) throws {
        file = try SafeTensors(contentsOf: fixtureURL(name))
        let json = try #require(file.metadata["config"])
        config = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }

    func tensor(_ name: String) throws -> Tensor { try file.tensor(named: name) }
    func expected(_ name: String) throws -> [Double] { try tensor(name).scalars.map(Double.init) }
    func mask(_ name: String) throws -> BooleanMask? {
        guard file.contains(name) else { return nil }
        return try BooleanMask(shape: file.shape(of: name), values: file.booleans(named: name))
    }

    /// The module the fixture was made with, its parameters loaded.
    func module(queryFeatures: Int, keyFeatures: Int, valueFeatures: Int) throws -> MultiHeadDotProductAttention {
        var rng = SeededGenerator(seed: 0)
        var module = try MHDPA(
            heads: config["num_heads"] as! Int, inputFeatures: queryFeatures, keyFeatures: keyFeatures,
            valueFeatures: valueFeatures, qkvFeatures: config["qkv_features"] as? Int,
            outFeatures: config["out_features"] as? Int, useBias: config["use_bias"] as? Bool ?? true,
            normalizeQK: config["normalize_qk"] as? Bool ?? false, using: &rng)
        try module.loadParameters(from: file, prefix: "param.")
        return module
    }
}

/// Expects `body` to throw an `AttentionError` about `argument` (its `shapeMismatch`,
/// `invalidArgument` or `overflow` argument).
private func expectFlaxError(
    _ argument: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected an error about \(argument), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as AttentionError {
        let actual: String?
        switch error {
        case let .shapeMismatch(name, _, _), let .invalidArgument(name, _), let .overflow(name): actual = name
        default: actual = nil
        }
        #expect(actual == argument, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.description.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected an AttentionError about \(argument), got \(error)", sourceLocation: sourceLocation)
    }
}

/// `Σ_j w[b, h, i, j] · v[b, j, h, :]` for weights (B, H, L, S) and values (B, S, H, D), as
/// (B, L, H, D).
private func applyWeights(_ weights: Tensor, _ values: Tensor) throws -> Tensor {
    let (b, h, l, s) = (weights.shape[0], weights.shape[1], weights.shape[2], weights.shape[3])
    let d = values.shape[3]
    let w = weights.scalars.map(Double.init), v = values.scalars.map(Double.init)
    var out = [Float](repeating: 0, count: b * l * h * d)
    for bi in 0..<b {
        for hi in 0..<h {
            for i in 0..<l {
                for c in 0..<d {
                    var sum = 0.0
                    for j in 0..<s { sum += w[((bi * h + hi) * l + i) * s + j] * v[((bi * s + j) * h + hi) * d + c] }
                    out[((bi * l + i) * h + hi) * d + c] = Float(sum)
                }
            }
        }
    }
    return try Tensor(shape: [b, l, h, d], scalars: out)
}

/// A causal mask `(L, L)`, true on and below the diagonal: Flax's `make_causal_mask`.
private func causalMask(_ length: Int) throws -> BooleanMask {
    try BooleanMask(shape: [length, length]) { $0[1] <= $0[0] }
}

/// The standard normal truncated to [-2, 2]: its second and fourth moments.
private func truncatedNormalMoments() -> (second: Double, fourth: Double) {
    let a = 2.0
    let z = erf(a / 2.0.squareRoot())
    let phi = exp(-a * a / 2) / (2 * Double.pi).squareRoot()
    let second = 1 - 2 * a * phi / z
    let fourth = (3 * (z - 2 * a * phi) - 2 * a * a * a * phi) / z
    return (second, fourth)
}

extension KernelTests {
    @Suite("Flax MultiHeadDotProductAttention")
    struct FlaxMultiHeadDotProductAttentionTests {
        // MARK: Fixtures

        @Test(arguments: [
            "flax_mhdpa_defaults", "flax_mhdpa_cross", "flax_mhdpa_no_bias", "flax_mhdpa_mask",
            "flax_mhdpa_normalize_qk",
        ])
        func matchesFlax(fixture name: String) throws {
            let fixture = try FlaxFixture(name)
            let query = try fixture.tensor("input.query"), key = try fixture.tensor("input.key")
            let value = try fixture.tensor("input.value")
            let mask = try fixture.mask("input.mask")
            let module = try fixture.module(
                queryFeatures: query.shape.last!, keyFeatures: key.shape.last!, valueFeatures: value.shape.last!)

            // Every parameter of the file is one of the module's, under Flax's name.
            let fileParameters = Set(fixture.file.names.filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) })
            #expect(Set(module.parameterShapes.map(\.name)) == fileParameters)

            let selfAttention = fixture.config["self_attention"] as? Bool ?? false
            let result = try selfAttention
                ? module.callWithWeights(query: query, mask: mask)
                : module.callWithWeights(query: query, key: key, value: value, mask: mask)
            let (output, weights) = (result.output, try #require(result.weights))
            let expectedOut = try fixture.tensor("output.out"), expectedWeights = try fixture.tensor("output.weights")
            expectClose(output, try fixture.expected("output.out"), shape: expectedOut.shape,
                        rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "\(name) out")
            expectClose(weights, try fixture.expected("output.weights"), shape: expectedWeights.shape,
                        rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "\(name) weights")

            // The plain call gives the same output; so do the unfused kernel and an explicit key.
            let plain = try module(query: query, key: key, value: value, mask: mask)
            #expect(plain == output)
            var unfused = module
            unfused.attentionFunction = .unfused
            expectClose(try unfused(query: query, key: key, value: value, mask: mask), try fixture.expected("output.out"),
                        shape: expectedOut.shape, rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "\(name) unfused")
        }

        @Test func fullyMaskedRowIsTheMeanOfTheValues() throws {
            // flax_mhdpa_mask: batch 1, query 3 sees no key: uniform weights 1/S.
            let fixture = try FlaxFixture("flax_mhdpa_mask")
            let module = try fixture.module(queryFeatures: 8, keyFeatures: 8, valueFeatures: 8)
            let weights = try #require(try module.callWithWeights(
                query: fixture.tensor("input.query"), key: fixture.tensor("input.key"), mask: fixture.mask("input.mask")
            ).weights)
            for h in 0..<2 {
                for j in 0..<6 { #expect(abs(weights[1, h, 3, j] - 1 / 6) < 1e-7) }
            }
        }

        // MARK: Decoding

        @Test func decodeStepsMatchFlax() throws {
            let fixture = try FlaxFixture("flax_mhdpa_decode")
            let module = try fixture.module(queryFeatures: 8, keyFeatures: 8, valueFeatures: 8)
            var cache = try module.makeCache(batchShape: [2], maxLength: fixture.config["max_len"] as! Int)
            #expect(cache.key.shape == [2, 6, 2, 4] && cache.index == 0 && cache.remaining == 6)
            for step in 0..<4 {
                let out = try module.decode(fixture.tensor("input.x_step\(step)"), cache: &cache)
                expectClose(out, try fixture.expected("output.out_step\(step)"), shape: [2, 1, 8],
                            rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "step \(step)")
                #expect(cache.index == step + 1)
            }
            expectClose(cache.key, try fixture.expected("output.cached_key"), shape: [2, 6, 2, 4],
                        rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "cached_key")
            expectClose(cache.value, try fixture.expected("output.cached_value"), shape: [2, 6, 2, 4],
                        rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "cached_value")

            // The whole sequence with a causal mask, in one call.
            let full = try module(query: fixture.tensor("input.x_full"), mask: causalMask(4))
            expectClose(full, try fixture.expected("output.full_causal"), shape: [2, 4, 8],
                        rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "full causal")

            // A cache imported from Flax's collection continues where Flax's stopped.
            let imported = try KeyValueCache(
                key: fixture.tensor("output.cached_key"), value: fixture.tensor("output.cached_value"), index: 4)
            #expect(imported.batchShape == [2] && imported.maxLength == 6 && imported.remaining == 2)
        }

        @Test(arguments: [[4], [1, 1, 1, 1], [3, 1], [1, 2, 1], [2, 2]])
        func multiTokenStepsEqualFullCausalAttention(steps: [Int]) throws {
            let fixture = try FlaxFixture("flax_mhdpa_decode")
            let module = try fixture.module(queryFeatures: 8, keyFeatures: 8, valueFeatures: 8)
            let x = try fixture.tensor("input.x_full")
            for function in [MHDPA.AttentionFunction.fused, .unfused, .init { try MHDPA.AttentionFunction.fused($0) }] {
                var decoder = module
                decoder.attentionFunction = function
                var cache = try decoder.makeCache(batchShape: [2], maxLength: 6)
                var outputs: [Tensor] = []
                var start = 0
                for n in steps {
                    outputs.append(try decoder.decode(x.sliced(start..<(start + n), axis: 1), cache: &cache))
                    start += n
                }
                expectClose(try Tensor.concatenated(outputs, axis: 1), try fixture.expected("output.full_causal"),
                            shape: [2, 4, 8], rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "steps \(steps)")
                expectClose(cache.key, try fixture.expected("output.cached_key"), shape: [2, 6, 2, 4],
                            rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "cached_key, steps \(steps)")
                #expect(cache.index == 4)
            }
        }

        @Test func decodingWithBatchDimensionsNormalisationAndMaskEqualsFullAttention() throws {
            var rng = SeededGenerator(seed: 31)
            var module = try MHDPA(
                heads: 3, inputFeatures: 10, qkvFeatures: 12, outFeatures: 7, normalizeQK: true, using: &rng)
            // Non-trivial biases and scales.
            for entry in module.parameterPaths where !entry.name.hasSuffix("kernel") {
                let (name, path) = (entry.name, entry.path)
                let shape = module[keyPath: path].shape
                module[keyPath: path] = try Tensor(randomNormal: shape, mean: name.hasSuffix("scale") ? 1 : 0,
                                                   standardDeviation: 0.3, using: &rng)
            }
            let (length, maxLength) = (7, 9)
            let x = try Tensor(randomNormal: [2, 2, length, 10], using: &rng)
            // Padding: in batch (0, *) slot 1 is hidden from everyone (slot 0 stays visible).
            let padding = try BooleanMask(shape: [2, 1, 1, 1, maxLength]) { !($0[0] == 0 && $0[4] == 1) }
            let fullMask = try BooleanMask(shape: [2, 1, 1, length, length]) { $0[4] <= $0[3] && !($0[0] == 0 && $0[4] == 1) }
            let expected = try module(query: x, mask: fullMask).scalars.map(Double.init)

            for function in [MHDPA.AttentionFunction.fused, .unfused, .init { try MHDPA.AttentionFunction.fused($0) }] {
                var decoder = module
                decoder.attentionFunction = function
                var cache = try decoder.makeCache(batchShape: [2, 2], maxLength: maxLength)
                var outputs: [Tensor] = []
                var start = 0
                for n in [3, 1, 2, 1] {
                    outputs.append(try decoder.decode(x.sliced(start..<(start + n), axis: 2), cache: &cache, mask: padding))
                    start += n
                }
                expectClose(try Tensor.concatenated(outputs, axis: 2), expected, shape: [2, 2, length, 7],
                            rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol)
                // The cached keys are the normalised projections; unwritten slots stay zero.
                let keys = try module.keyNorm!(module.keyProjection(x))
                expectClose(try cache.key.sliced(0..<length, axis: 2), keys.scalars.map(Double.init), shape: [2, 2, length, 3, 4],
                            rtol: fixtureTolerance.rtol, atol: fixtureTolerance.atol, "cached keys")
                #expect(try cache.key.sliced(length..<maxLength, axis: 2).scalars.allSatisfy { $0 == 0 })
            }
        }

        @Test func cacheOverflowThrowsAndLeavesTheCacheUnchanged() throws {
            var rng = SeededGenerator(seed: 5)
            let module = try MHDPA(heads: 2, inputFeatures: 4, using: &rng)
            var cache = try module.makeCache(batchShape: [1], maxLength: 3)
            _ = try module.decode(Tensor(randomNormal: [1, 2, 4], using: &rng), cache: &cache)
            let before = cache
            do {
                _ = try module.decode(Tensor(randomNormal: [1, 2, 4], using: &rng), cache: &cache)
                Issue.record("decoding past maxLength did not throw")
            } catch let AttentionError.invalidArgument(argument, reason) {
                #expect(argument == "cache" && reason.contains("3 positions"), "\(reason)")
            }
            #expect(cache == before && cache.index == 2)
            _ = try module.decode(Tensor(randomNormal: [1, 1, 4], using: &rng), cache: &cache)
            #expect(cache.index == 3 && cache.remaining == 0)
            expectFlaxError("cache") { _ = try module.decode(Tensor(randomNormal: [1, 1, 4], using: &rng), cache: &cache) }

            // reset empties it.
            cache.reset()
            #expect(cache.index == 0 && cache.key.scalars.allSatisfy { $0 == 0 })
        }

        @Test func aFailedStepLeavesTheCacheUnchanged() throws {
            var rng = SeededGenerator(seed: 6)
            var module = try MHDPA(heads: 2, inputFeatures: 4, using: &rng)
            var cache = try module.makeCache(batchShape: [2], maxLength: 4)
            _ = try module.decode(Tensor(randomNormal: [2, 1, 4], using: &rng), cache: &cache)
            let before = cache
            struct Refused: Error {}
            module.attentionFunction = .init { _ in throw Refused() }
            #expect(throws: Refused.self) { _ = try module.decode(Tensor(randomNormal: [2, 2, 4], using: &rng), cache: &cache) }
            #expect(cache == before)
        }

        @Test func aCacheCopyIsIndependent() throws {
            var rng = SeededGenerator(seed: 8)
            let module = try MHDPA(heads: 2, inputFeatures: 4, using: &rng)
            var cache = try module.makeCache(batchShape: [], maxLength: 4)   // unbatched [n, F]
            _ = try module.decode(Tensor(randomNormal: [1, 4], using: &rng), cache: &cache)
            var branch = cache
            let token = try Tensor(randomNormal: [1, 4], using: &rng)
            let a = try module.decode(token, cache: &cache)
            #expect(branch.index == 1 && cache.index == 2)
            let b = try module.decode(token, cache: &branch)
            #expect(a == b && branch == cache)
        }

        // MARK: Shapes and masks

        @Test func leadingBatchDimensionsAreIndependent() throws {
            var rng = SeededGenerator(seed: 12)
            let module = try MHDPA(heads: 2, inputFeatures: 6, keyFeatures: 5, outFeatures: 3, using: &rng)
            let q = try Tensor(randomNormal: [2, 3, 4, 6], using: &rng)
            let k = try Tensor(randomNormal: [2, 3, 5, 5], using: &rng)
            let batched = try module(query: q, key: k)
            #expect(batched.shape == [2, 3, 4, 3])
            // Unbatched [L, F] inputs give the slices of the batched result.
            let slice = try module(query: q.reshaped([6, 4, 6]).sliced(4..<5).reshaped([4, 6]),
                                   key: k.reshaped([6, 5, 5]).sliced(4..<5).reshaped([5, 5]))
            expectClose(slice, try batched.reshaped([6, 4, 3]).sliced(4..<5).scalars.map(Double.init), shape: [4, 3])
        }

        @Test func masksBroadcastOverPartOfTheBatchDimensions() throws {
            var rng = SeededGenerator(seed: 13)
            let module = try MHDPA(heads: 2, inputFeatures: 8, using: &rng)
            let x = try Tensor(randomNormal: [2, 3, 5, 8], using: &rng)
            // [2, 1, 1, 5, 5]: one mask per first batch index, shared by the second and the heads.
            let partial = try BooleanMask(shape: [2, 1, 1, 5, 5]) { ($0[0] + $0[3] + 2 * $0[4]) % 3 != 0 }
            let full = try BooleanMask(shape: [2, 3, 2, 5, 5]) { ($0[0] + $0[3] + 2 * $0[4]) % 3 != 0 }
            let ra = try module.callWithWeights(query: x, mask: partial)
            let rb = try module.callWithWeights(query: x, mask: full)
            #expect(ra.output == rb.output)
            let (wa, wb) = (try #require(ra.weights), try #require(rb.weights))
            expectClose(wa, wb.scalars.map(Double.init), shape: [2, 3, 2, 5, 5], rtol: 0, atol: 0)
            // (L, S) and (H, L, S) masks too.
            let perHead = try BooleanMask(shape: [2, 5, 5]) { $0[0] == 0 || $0[2] <= $0[1] }
            let perHeadFull = try BooleanMask(shape: [2, 3, 2, 5, 5]) { $0[2] == 0 || $0[4] <= $0[3] }
            #expect(try module(query: x, mask: perHead) == module(query: x, mask: perHeadFull))
        }

        // MARK: Initialisation and parameters

        @Test func initialisationIsFlaxs() throws {
            var rng = SeededGenerator(seed: 21)
            let module = try MHDPA(
                heads: 4, inputFeatures: 512, keyFeatures: 256, valueFeatures: 128, qkvFeatures: 256, outFeatures: 64,
                normalizeQK: true, using: &rng)
            #expect(module.parameterShapes.map(\.name) == [
                "query.kernel", "query.bias", "key.kernel", "key.bias", "value.kernel", "value.bias",
                "out.kernel", "out.bias", "query_ln.scale", "key_ln.scale",
            ])
            #expect(module.parameterShapes.map(\.shape) == [
                [512, 4, 64], [4, 64], [256, 4, 64], [4, 64], [128, 4, 64], [4, 64], [4, 64, 64], [64], [64], [64],
            ])
            #expect(module.headDimension == 64 && module.qkvFeatures == 256 && module.outFeatures == 64)
            #expect(module.inputFeatures == 512 && module.keyFeatures == 256 && module.valueFeatures == 128)
            let (second, fourth) = truncatedNormalMoments()
            for (kernel, fanIn) in [
                (module.queryProjection.weight, 512), (module.keyProjection.weight, 256),
                (module.valueProjection.weight, 128), (module.outputProjection.weight, 256),
            ] {
                let sigma = (1 / Double(fanIn)).squareRoot() / 0.87962566103423978
                let values = kernel.scalars
                #expect(values.allSatisfy { abs(Double($0)) <= 2 * sigma * (1 + 1e-6) })
                // Variance exactly 1/fanIn.
                #expect(abs(second * sigma * sigma - 1 / Double(fanIn)) < 1e-9)
                expectMoments(values, mean: 0, variance: 1 / Double(fanIn), fourthMoment: fourth * pow(sigma, 4),
                              "kernel \(kernel.shape)")
            }
            for bias in [module.queryProjection.bias!, module.keyProjection.bias!, module.valueProjection.bias!,
                         module.outputProjection.bias!] {
                #expect(bias.scalars.allSatisfy { $0 == 0 })
            }
            #expect(module.queryNorm!.weight!.scalars.allSatisfy { $0 == 1 } && module.queryNorm!.bias == nil)
            #expect(module.keyNorm!.epsilon == 1e-6 && module.keyNorm!.variance == .fast)

            // Seeded: the same generator gives the same parameters.
            var a = SeededGenerator(seed: 3), b = SeededGenerator(seed: 3)
            let first = try MHDPA(heads: 2, inputFeatures: 8, using: &a), repeated = try MHDPA(heads: 2, inputFeatures: 8, using: &b)
            #expect(first.parameterDictionary() == repeated.parameterDictionary())

            let noBias = try MHDPA(heads: 2, inputFeatures: 8, useBias: false, using: &a)
            #expect(noBias.parameterShapes.map(\.name) == ["query.kernel", "key.kernel", "value.kernel", "out.kernel"])
            #expect(!noBias.useBias && !noBias.normalizeQK && noBias.parameterCount == 4 * 64)
        }

        @Test func parametersRoundTripThroughSafetensors() throws {
            var rng = SeededGenerator(seed: 22)
            let module = try MHDPA(heads: 2, inputFeatures: 8, normalizeQK: true, using: &rng)
            let file = try module.safeTensors(prefix: "params.attention")
            var other = try MHDPA(heads: 2, inputFeatures: 8, normalizeQK: true, using: &rng)
            #expect(other.parameterDictionary() != module.parameterDictionary())
            try other.loadParameters(from: file, prefix: "params.attention")
            #expect(other.parameterDictionary() == module.parameterDictionary())
        }

        // MARK: Dropout

        @Test(arguments: [true, false])
        func dropoutKeepsTheExpectedFraction(broadcast: Bool) throws {
            var rng = SeededGenerator(seed: 41)
            let (b, h, l, s, p) = (2, 3, 40, 50, Float(0.25))
            let q = try Tensor(randomNormal: [b, l, h, 8], using: &rng)
            let k = try Tensor(randomNormal: [b, s, h, 8], using: &rng)
            let plain = try dotProductAttentionWeights(query: q, key: k)
            let dropped = try dotProductAttentionWeights(
                query: q, key: k, dropout: Dropout(probability: p, seed: 9), broadcastDropout: broadcast)
            let kept = dropped.scalars.map { $0 != 0 }
            let n = Double(kept.count), fraction = Double(kept.filter { $0 }.count) / n
            // Broadcast: only l·s independent decisions.
            let decisions = broadcast ? Double(l * s) : n
            #expect(abs(fraction - 0.75) <= 6 * (0.75 * 0.25 / decisions).squareRoot(), "kept \(fraction)")
            // Kept weights are scaled by 1/(1-p).
            for (w, d) in zip(plain.scalars, dropped.scalars) where d != 0 {
                #expect(abs(d - w / (1 - p)) <= 1e-6 * max(1, abs(d)))
            }
            // The pattern is shared by every (batch, head) exactly when broadcast.
            let block = l * s
            let patterns = (0..<(b * h)).map { Array(kept[($0 * block)..<(($0 + 1) * block)]) }
            #expect(patterns.allSatisfy { $0 == patterns[0] } == broadcast)
        }

        @Test(arguments: [true, false])
        func moduleDropoutIsDeterministicAndMatchesTheWeights(broadcast: Bool) throws {
            var rng = SeededGenerator(seed: 42)
            let module = try MHDPA(
                heads: 3, inputFeatures: 9, dropoutRate: 0.3, broadcastDropout: broadcast, using: &rng)
            let x = try Tensor(randomNormal: [2, 6, 9], using: &rng)
            let mask = try BooleanMask(shape: [2, 1, 6, 6]) { $0[0] == 0 || $0[3] != 2 }
            let a = try module(query: x, mask: mask, deterministic: false, dropoutSeed: 7)
            let again = try module(query: x, mask: mask, deterministic: false, dropoutSeed: 7)
            let other = try module(query: x, mask: mask, deterministic: false, dropoutSeed: 8)
            #expect(a == again && a != other)

            // Deterministic: no dropout, whichever way it is given.
            var noDropout = module
            noDropout.dropoutRate = 0
            let clean = try noDropout(query: x, mask: mask)
            #expect(try module(query: x, mask: mask, deterministic: true) == clean)
            var fixed = module
            fixed.deterministic = true
            #expect(try fixed(query: x, mask: mask) == clean)

            // The fused kernel's dropout decisions are those of dotProductAttentionWeights.
            let q = try module.queryProjection(x), k = try module.keyProjection(x), v = try module.valueProjection(x)
            let weights = try dotProductAttentionWeights(
                query: q, key: k, mask: mask, dropout: Dropout(probability: 0.3, seed: 7), broadcastDropout: broadcast)
            let expected = try module.outputProjection(applyWeights(weights, v))
            expectClose(a, expected.scalars.map(Double.init), shape: [2, 6, 9])
            var unfused = module
            unfused.attentionFunction = .unfused
            expectClose(try unfused(query: x, mask: mask, deterministic: false, dropoutSeed: 7),
                        expected.scalars.map(Double.init), shape: [2, 6, 9], "unfused")

            // Decoding with dropout is reproducible too.
            var c1 = try module.makeCache(batchShape: [2], maxLength: 6), c2 = c1
            let d1 = try module.decode(x.sliced(0..<3, axis: 1), cache: &c1, deterministic: false, dropoutSeed: 3)
            let d2 = try module.decode(x.sliced(0..<3, axis: 1), cache: &c2, deterministic: false, dropoutSeed: 3)
            #expect(d1 == d2)
        }

        // MARK: dotProductAttentionWeights

        @Test func weightsFollowFlaxsMaskingAndBias() throws {
            var rng = SeededGenerator(seed: 51)
            let q = try Tensor(randomNormal: [3, 2, 4], using: &rng)   // unbatched [L, H, D]
            let k = try Tensor(randomNormal: [5, 2, 4], using: &rng)
            let mask = try BooleanMask(shape: [3, 5]) { $0[0] != 1 && ($0[1] != 3) }   // row 1 fully masked
            var biasValues = [Float](repeating: 0, count: 2 * 3 * 5)
            biasValues[0 * 15 + 2 * 5 + 4] = -.infinity   // head 0, row 2: key 4 excluded
            for j in 0..<5 { biasValues[1 * 15 + 0 * 5 + j] = -.infinity }   // head 1, row 0: all -inf → NaN
            let bias = try Tensor(shape: [2, 3, 5], scalars: biasValues)
            let w = try dotProductAttentionWeights(query: q, key: k, mask: mask, bias: bias)
            #expect(w.shape == [2, 3, 5])
            let qs = q.scalars.map(Double.init), ks = k.scalars.map(Double.init)
            for h in 0..<2 {
                for i in 0..<3 {
                    if i == 1 {
                        for j in 0..<5 { #expect(abs(w[h, i, j] - 0.2) < 1e-7) }   // uniform 1/S
                        continue
                    }
                    if h == 1 && i == 0 {
                        // Masked key 3 has finfo.min, the others -inf: all of the weight goes to key 3.
                        for j in 0..<5 { #expect(w[h, i, j] == (j == 3 ? 1 : 0)) }
                        continue
                    }
                    var scores = (0..<5).map { j -> Double in
                        (0..<4).reduce(0.0) { $0 + qs[(i * 2 + h) * 4 + $1] * ks[(j * 2 + h) * 4 + $1] } / 2
                            + Double(biasValues[(h * 3 + i) * 5 + j])
                    }
                    scores[3] = -.infinity
                    let m = scores.max()!, sum = scores.reduce(0) { $0 + exp($1 - m) }
                    for j in 0..<5 { #expect(abs(Double(w[h, i, j]) - exp(scores[j] - m) / sum) < 1e-6) }
                }
            }
            // Only a bias of -inf on a whole row (no mask) gives NaN, as in Flax.
            let nan = try dotProductAttentionWeights(query: q, key: k, bias: bias)
            #expect((0..<5).allSatisfy { nan[1, 0, $0].isNaN })
        }

        // MARK: Errors

        @Test func constructionErrors() throws {
            var rng = SeededGenerator(seed: 61)
            expectFlaxError("heads") { _ = try MHDPA(heads: 0, inputFeatures: 8, using: &rng) }
            expectFlaxError("inputFeatures") { _ = try MHDPA(heads: 2, inputFeatures: 0, using: &rng) }
            expectFlaxError("keyFeatures") { _ = try MHDPA(heads: 2, inputFeatures: 8, keyFeatures: -1, using: &rng) }
            expectFlaxError("valueFeatures") { _ = try MHDPA(heads: 2, inputFeatures: 8, valueFeatures: 0, using: &rng) }
            expectFlaxError("outFeatures") { _ = try MHDPA(heads: 2, inputFeatures: 8, outFeatures: 0, using: &rng) }
            expectFlaxError("qkvFeatures") { _ = try MHDPA(heads: 3, inputFeatures: 8, using: &rng) }
            expectFlaxError("qkvFeatures") { _ = try MHDPA(heads: 4, inputFeatures: 8, qkvFeatures: 10, using: &rng) }
            expectFlaxError("dropoutRate") { _ = try MHDPA(heads: 2, inputFeatures: 8, dropoutRate: 1, using: &rng) }
            expectFlaxError("dropoutRate") { _ = try MHDPA(heads: 2, inputFeatures: 8, dropoutRate: -0.1, using: &rng) }
            expectFlaxError("inputAxes") {
                _ = try Linear(kernel: Tensor(zeros: [2, 3]), inputAxes: 2)
            }
            expectFlaxError("bias") {
                _ = try Linear(kernel: Tensor(zeros: [2, 3, 4]), bias: Tensor(zeros: [4]), inputAxes: 1)
            }
            expectFlaxError("maxLength") { _ = try KeyValueCache(batchShape: [2], maxLength: 0, heads: 2, headDimension: 4) }
            expectFlaxError("batchShape") { _ = try KeyValueCache(batchShape: [0], maxLength: 4, heads: 2, headDimension: 4) }
            expectFlaxError("index") {
                _ = try KeyValueCache(key: Tensor(zeros: [1, 4, 2, 2]), value: Tensor(zeros: [1, 4, 2, 2]), index: 5)
            }
            expectFlaxError("value") {
                _ = try KeyValueCache(key: Tensor(zeros: [1, 4, 2, 2]), value: Tensor(zeros: [1, 4, 2, 3]), index: 0)
            }
        }

        @Test func callErrors() throws {
            var rng = SeededGenerator(seed: 62)
            let module = try MHDPA(heads: 2, inputFeatures: 8, keyFeatures: 6, valueFeatures: 5, using: &rng)
            let q = try Tensor(randomNormal: [2, 4, 8], using: &rng)
            let k = try Tensor(randomNormal: [2, 7, 6], using: &rng)
            let v = try Tensor(randomNormal: [2, 7, 5], using: &rng)
            _ = try module(query: q, key: k, value: v)
            expectFlaxError("query") { _ = try module(query: Tensor(zeros: [2, 4, 7]), key: k, value: v) }
            expectFlaxError("query") { _ = try module(query: Tensor(zeros: [8]), key: k, value: v) }
            expectFlaxError("key") { _ = try module(query: q, key: Tensor(zeros: [2, 7, 8]), value: v) }
            expectFlaxError("key") { _ = try module(query: q, key: Tensor(zeros: [3, 7, 6]), value: v) }
            expectFlaxError("key") { _ = try module(query: q) }   // the query is not keyFeatures wide
            expectFlaxError("value") { _ = try module(query: q, key: k, value: Tensor(zeros: [2, 7, 6])) }
            expectFlaxError("value") { _ = try module(query: q, key: k, value: Tensor(zeros: [2, 6, 5])) }
            expectFlaxError("key") { _ = try module(query: q, value: v) }   // value without key
            expectFlaxError("mask") {
                _ = try module(query: q, key: k, value: v, mask: BooleanMask(shape: [2, 1, 4, 6]) { _ in true })
            }
            expectFlaxError("mask") {
                _ = try module(query: q, key: k, value: v, mask: BooleanMask(shape: [1, 2, 1, 4, 7]) { _ in true })
            }
            expectFlaxError("mask") {
                _ = try module(query: q, key: k, value: v, mask: BooleanMask(shape: [3, 4, 7]) { _ in true })
            }

            // Dropout needs `deterministic` exactly once and a seed.
            var dropping = module
            dropping.dropoutRate = 0.1
            expectFlaxError("deterministic") { _ = try dropping(query: q, key: k, value: v) }
            expectFlaxError("dropoutSeed") { _ = try dropping(query: q, key: k, value: v, deterministic: false) }
            _ = try dropping(query: q, key: k, value: v, deterministic: true)
            _ = try dropping(query: q, key: k, value: v, deterministic: false, dropoutSeed: 1)
            dropping.deterministic = false
            expectFlaxError("deterministic") { _ = try dropping(query: q, key: k, value: v, deterministic: true) }
            expectFlaxError("dropoutSeed") { _ = try dropping(query: q, key: k, value: v) }
            dropping.dropoutRate = 1
            expectFlaxError("dropoutRate") { _ = try dropping(query: q, key: k, value: v, dropoutSeed: 1) }

            // An attention function must keep the heads' shape.
            var shrinking = module
            shrinking.attentionFunction = .init { arguments in try arguments.query.sliced(0..<1, axis: 2) }
            expectFlaxError("attentionFunction") { _ = try shrinking(query: q, key: k, value: v) }

            // Parameters changed to shapes that do not fit.
            var broken = module
            broken.outputProjection.weight = try Tensor(zeros: [2, 3, 8])
            expectFlaxError("outputProjection.kernel") { _ = try broken(query: q, key: k, value: v) }
            broken = module
            broken.keyProjection.weight = try Tensor(zeros: [6, 2, 3])
            expectFlaxError("keyProjection.kernel") { _ = try broken(query: q, key: k, value: v) }
            broken = module
            broken.valueProjection.bias = try Tensor(zeros: [8])
            expectFlaxError("valueProjection.bias") { _ = try broken(query: q, key: k, value: v) }
            var loading = module
            #expect(throws: AttentionError.self) {
                try loading.loadParameters(from: ["query.kernel": Tensor(zeros: [8, 2, 3])], strict: false)
            }

            // dotProductAttentionWeights.
            let heads = try Tensor(zeros: [2, 4, 2, 3])
            expectFlaxError("query") { _ = try dotProductAttentionWeights(query: Tensor(zeros: [4, 3]), key: heads) }
            expectFlaxError("key") { _ = try dotProductAttentionWeights(query: heads, key: Tensor(zeros: [2, 4, 1, 3])) }
            expectFlaxError("mask") {
                _ = try dotProductAttentionWeights(query: heads, key: heads, mask: BooleanMask(shape: [3, 4, 4]) { _ in true })
            }
            expectFlaxError("bias") { _ = try dotProductAttentionWeights(query: heads, key: heads, bias: Tensor(zeros: [5])) }
            expectFlaxError("dropout.probability") {
                _ = try dotProductAttentionWeights(query: heads, key: heads, dropout: Dropout(probability: 1, seed: 0))
            }
        }

        @Test func decodeErrors() throws {
            var rng = SeededGenerator(seed: 63)
            let module = try MHDPA(heads: 2, inputFeatures: 8, using: &rng)
            var cache = try module.makeCache(batchShape: [2], maxLength: 5)
            let x = try Tensor(randomNormal: [2, 2, 8], using: &rng)
            expectFlaxError("key") { _ = try module.decode(x, key: Tensor(zeros: [2, 3, 8]), cache: &cache) }
            expectFlaxError("query") { _ = try module.decode(Tensor(zeros: [3, 2, 8]), cache: &cache) }
            expectFlaxError("query") { _ = try module.decode(Tensor(zeros: [2, 2, 7]), cache: &cache) }
            expectFlaxError("query") { _ = try module.decode(Tensor(zeros: [2, 0, 8]), cache: &cache) }
            var otherHeads = try KeyValueCache(batchShape: [2], maxLength: 5, heads: 4, headDimension: 2)
            expectFlaxError("cache") { _ = try module.decode(x, cache: &otherHeads) }
            // The mask covers the cache's maxLength slots, not the step's keys.
            expectFlaxError("mask") { _ = try module.decode(x, cache: &cache, mask: BooleanMask(shape: [2, 2]) { _ in true }) }
            _ = try module.decode(x, cache: &cache, mask: BooleanMask(shape: [2, 5]) { _ in true })
            var dropping = module
            dropping.dropoutRate = 0.5
            expectFlaxError("deterministic") { _ = try dropping.decode(x, cache: &cache) }
            expectFlaxError("dropoutSeed") { _ = try dropping.decode(x, cache: &cache, deterministic: false) }
            #expect(cache.index == 2)
        }
    }
}
