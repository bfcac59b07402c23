import Foundation
import Testing
@testable import Attention

// MARK: - Fixture helpers (shared with TutorialModulesTests.swift)

/// A reference fixture of `Tests/AttentionTests/Fixtures` (see `Tests/Fixtures/README.md`).
struct ModuleFixture {
    let name: String
    let file: SafeTensors

    init(_ name: String) throws {
        self.name = name
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"))
        file = try SafeTensors(contentsOf: url)
    }

    func tensor(_ name: String) throws -> Tensor { try file.tensor(named: name) }

    func mask(_ name: String = "input.mask") throws -> BooleanMask? {
        guard file.contains(name) else { return nil }
        return try BooleanMask(shape: file.shape(of: name), values: file.booleans(named: name))
    }

    /// The `config` JSON object of the metadata.
    var config: [String: Any] {
        get throws {
            let text = try #require(file.metadata["config"])
            return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        }
    }
}

/// Expects `body` to throw an `AttentionError` concerning `argument` (shape mismatch or invalid
/// argument), optionally with `fragment` in its description.
func expectModuleError(
    argument: String, _ fragment: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected an error about \(argument), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as AttentionError {
        switch error {
        case let .shapeMismatch(name, _, _), let .invalidArgument(name, _):
            #expect(name == argument, "\(error)", sourceLocation: sourceLocation)
        default:
            Issue.record("expected an error about \(argument), got \(error)", sourceLocation: sourceLocation)
        }
        if let fragment {
            #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected an AttentionError about \(argument), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Rows `range` of the first axis.
func sliceRows(_ t: Tensor, _ range: Range<Int>) throws -> Tensor { try t.sliced(range, axis: 0) }

/// Example `b` of a batched tensor, without its batch axis.
func batchElement(_ t: Tensor, _ b: Int) throws -> Tensor {
    try t.sliced(b ..< b + 1, axis: 0).reshaped(Array(t.shape.dropFirst()))
}

/// Example `b` of a batched mask, without its batch axis.
func batchElement(_ mask: BooleanMask, _ b: Int) throws -> BooleanMask {
    let inner = Array(mask.shape.dropFirst())
    let size = inner.reduce(1, *)
    return try BooleanMask(shape: inner, values: Array(mask.values[b * size ..< (b + 1) * size]))
}

/// The MultiheadAttention a fixture's config describes, with the fixture's parameters loaded.
func equinoxAttention(_ fixture: ModuleFixture) throws -> MultiheadAttention {
    let config = try fixture.config
    func int(_ key: String) throws -> Int { try #require(config[key] as? Int) }
    func bool(_ key: String) throws -> Bool { try #require(config[key] as? Bool) }
    var rng = SeededGenerator(seed: 0)
    var attention = try MultiheadAttention(
        heads: int("num_heads"), querySize: int("query_size"), keySize: int("key_size"),
        valueSize: int("value_size"), outputSize: int("output_size"), qkSize: int("qk_size"),
        voSize: int("vo_size"), useQueryBias: bool("use_query_bias"), useKeyBias: bool("use_key_bias"),
        useValueBias: bool("use_value_bias"), useOutputBias: bool("use_output_bias"),
        dropoutProbability: Float(try #require(config["dropout_p"] as? Double)), inference: bool("inference"),
        using: &rng)
    try attention.loadParameters(from: fixture.file, prefix: "param.")
    return attention
}

// MARK: - Tests

extension KernelTests {
    @Suite("Equinox modules: MultiheadAttention and RotaryPositionalEmbedding")
    struct EquinoxModulesTests {
        // MARK: Fixtures

        @Test(arguments: [
            "eqx_mha_defaults", "eqx_mha_all_biases", "eqx_mha_sizes", "eqx_mha_cross_lengths", "eqx_mha_mask2d",
            "eqx_mha_mask3d", "eqx_mha_batched",
        ])
        func multiheadAttentionMatchesEquinox(name: String) throws {
            let fixture = try ModuleFixture(name)
            let attention = try equinoxAttention(fixture)
            let (q, k, v) = (try fixture.tensor("input.query"), try fixture.tensor("input.key"), try fixture.tensor("input.value"))
            let out = try attention(query: q, key: k, value: v, mask: fixture.mask())
            expectFixtureClose(out, try fixture.tensor("output.out"), "\(name)")
        }

        @Test func defaultsAreEquinoxs() throws {
            let fixture = try ModuleFixture("eqx_mha_defaults")
            var rng = SeededGenerator(seed: 5)
            var attention = try MultiheadAttention(heads: 2, querySize: 8, using: &rng)
            #expect(attention.keySize == 8 && attention.valueSize == 8 && attention.outputSize == 8)
            #expect(attention.qkSize == 4 && attention.voSize == 4 && attention.dropoutProbability == 0)
            #expect(!attention.inference)
            #expect(attention.parameterPaths.map(\.name)
                == ["query_proj.weight", "key_proj.weight", "value_proj.weight", "output_proj.weight"])
            // Loads the fixture of Equinox's defaults, which has no biases, strictly.
            try attention.loadParameters(from: fixture.file, prefix: "param.")
            let out = try attention(
                query: fixture.tensor("input.query"), key: fixture.tensor("input.key"),
                value: fixture.tensor("input.value"))
            expectFixtureClose(out, try fixture.tensor("output.out"))
        }

        @Test func fullyMaskedRowsGiveTheMeanOfTheValues() throws {
            let fixture = try ModuleFixture("eqx_mha_mask2d")
            let attention = try equinoxAttention(fixture)
            let value = try fixture.tensor("input.value")
            let out = try attention(
                query: fixture.tensor("input.query"), key: fixture.tensor("input.key"), value: value,
                mask: fixture.mask())
            // output_proj(mean over keys of value_proj(value)), for the fully masked rows 1 and 4.
            let projected = try attention.valueProjection(value).scalars
            let (s, width) = (value.shape[0], attention.valueProjection.outputSize)
            let mean = (0 ..< width).map { c in (0 ..< s).reduce(Float(0)) { $0 + projected[$1 * width + c] } / Float(s) }
            let expected = try attention.outputProjection(Tensor(shape: [1, width], scalars: mean))
            expectFixtureClose(try sliceRows(out, 1 ..< 2), expected)
            expectFixtureClose(try sliceRows(out, 4 ..< 5), expected)
        }

        @Test(arguments: ["eqx_mha_rope_theta10000", "eqx_mha_rope_theta100", "eqx_mha_rope_self_attention"])
        func rotaryMatchesEquinoxsProcessHeads(name: String) throws {
            let fixture = try ModuleFixture(name)
            let config = try fixture.config
            let ropeConfig = try #require(config["rope"] as? [String: Any])
            let rope = try RotaryPositionalEmbedding(
                embeddingSize: try #require(ropeConfig["embedding_size"] as? Int),
                theta: Float(try #require(ropeConfig["theta"] as? Double)))
            let attention = try equinoxAttention(fixture)
            let (q, k, v) = (try fixture.tensor("input.query"), try fixture.tensor("input.key"), try fixture.tensor("input.value"))
            let expected = try fixture.tensor("output.out")

            // 1. The direct option: in place on the projected heads.
            expectFixtureClose(try attention(query: q, key: k, value: v, rotary: rope), expected, "rotary:")
            // 2. Equinox's own recipe, through processHeads.
            var calls = 0
            let hooked = try attention(query: q, key: k, value: v) { heads in
                calls += 1
                #expect(heads.query.shape == [q.shape[0], attention.heads, attention.qkSize])
                #expect(heads.value.shape == [v.shape[0], attention.heads, attention.voSize])
                try rope.rotateHeads(&heads.query)
                try rope.rotateHeads(&heads.key)
            }
            #expect(calls == 1)
            expectFixtureClose(hooked, expected, "processHeads")
            // 3. Self-attention entry (one packed projection), both ways.
            if try #require(config["self_attention"] as? Bool) {
                expectFixtureClose(try attention(q, rotary: rope), expected, "packed rotary:")
                let packedHooked = try attention(q) { heads in
                    try rope.rotateHeads(&heads.query)
                    try rope.rotateHeads(&heads.key)
                }
                expectFixtureClose(packedHooked, expected, "packed processHeads")
            }
        }

        @Test(arguments: ["eqx_mha_defaults", "eqx_mha_all_biases", "eqx_mha_rope_self_attention"])
        func selfAttentionProjectsOnceAndMatchesTheSeparatePath(name: String) throws {
            let fixture = try ModuleFixture(name)
            let attention = try equinoxAttention(fixture)
            let x = try fixture.tensor("input.query")
            let copy = try Tensor(shape: x.shape, scalars: x.scalars)   // another storage: separate path
            let separate = try attention(query: x, key: copy, value: copy)
            let packed = try attention(x)
            let same = try attention(query: x, key: x, value: x)
            expectFixtureClose(packed, separate, rtol: 1e-6, atol: 1e-6)
            #expect(packed == same)
            // Batched too, with a per-example (B, L, S) mask.
            var rng = SeededGenerator(seed: 3)
            let xs = try Tensor(randomNormal: [3, 5, attention.querySize], using: &rng)
            let mask = try BooleanMask(shape: [3, 5, 5]) { $0[2] <= $0[1] + $0[0] }
            let xsCopy = try Tensor(shape: xs.shape, scalars: xs.scalars)
            expectFixtureClose(
                try attention(xs, mask: mask), try attention(query: xs, key: xsCopy, value: xsCopy, mask: mask),
                rtol: 1e-6, atol: 1e-6)
        }

        @Test func packedWeightsFollowParameterChanges() throws {
            var rng = SeededGenerator(seed: 8)
            var attention = try MultiheadAttention(
                heads: 2, querySize: 8, useQueryBias: true, useValueBias: true, useOutputBias: true, using: &rng)
            let x = try Tensor(randomNormal: [5, 8], using: &rng)
            let copy = try Tensor(shape: x.shape, scalars: x.scalars)
            let before = try attention(x)
            expectFixtureClose(before, try attention(query: x, key: copy, value: copy), rtol: 1e-6, atol: 1e-6)
            // Mutate a weight in place, then load other parameters: each time the packed path follows.
            attention.keyProjection.weight.withUnsafeMutableBufferPointer { $0[3] += 0.5 }
            let mutated = try attention(x)
            #expect(mutated != before)
            expectFixtureClose(mutated, try attention(query: x, key: copy, value: copy), rtol: 1e-6, atol: 1e-6)
            let other = try MultiheadAttention(
                heads: 2, querySize: 8, useQueryBias: true, useValueBias: true, useOutputBias: true, using: &rng)
            try attention.loadParameters(from: other.parameterDictionary())
            expectFixtureClose(try attention(x), try other(query: x, key: copy, value: copy), rtol: 1e-6, atol: 1e-6)
            // A copy of the module changing its weights does not disturb the original.
            var changed = attention
            changed.valueProjection.bias = try Tensor(zeros: [8])
            let fromCopy = try changed(x)
            expectFixtureClose(try attention(x), try other(x), rtol: 1e-6, atol: 1e-6)
            expectFixtureClose(fromCopy, try changed(query: x, key: copy, value: copy), rtol: 1e-6, atol: 1e-6)
        }

        @Test func processHeadsSeesAndChangesTheHeads() throws {
            var rng = SeededGenerator(seed: 9)
            let attention = try MultiheadAttention(
                heads: 3, querySize: 6, keySize: 5, valueSize: 4, outputSize: 7, qkSize: 2, voSize: 3,
                useOutputBias: true, using: &rng)
            let q = try Tensor(randomNormal: [2, 4, 6], using: &rng)
            let k = try Tensor(randomNormal: [2, 5, 5], using: &rng)
            let v = try Tensor(randomNormal: [2, 5, 4], using: &rng)
            // Zero value heads: the output is the output projection's bias in every row.
            let out = try attention(query: q, key: k, value: v) { heads in
                #expect(heads.query.shape == [2, 4, 3, 2])
                #expect(heads.key.shape == [2, 5, 3, 2])
                #expect(heads.value.shape == [2, 5, 3, 3])
                heads.value = try Tensor(zeros: heads.value.shape)
            }
            let bias = try #require(attention.outputProjection.bias).scalars
            #expect(out.shape == [2, 4, 7])
            #expect(out.scalars == Array((0 ..< 8).map { _ in bias }.joined()))
        }

        @Test func batchedEqualsEachExampleUnbatched() throws {
            var rng = SeededGenerator(seed: 10)
            let attention = try MultiheadAttention(
                heads: 2, querySize: 8, keySize: 6, valueSize: 5, outputSize: 7, qkSize: 4, voSize: 3,
                useQueryBias: true, useKeyBias: true, useValueBias: true, useOutputBias: true, using: &rng)
            let rope = try RotaryPositionalEmbedding(embeddingSize: 4)
            let q = try Tensor(randomNormal: [3, 5, 8], using: &rng)
            let k = try Tensor(randomNormal: [3, 6, 6], using: &rng)
            let v = try Tensor(randomNormal: [3, 6, 5], using: &rng)
            let perHead = try BooleanMask(shape: [3, 2, 5, 6]) { ($0[0] + $0[1] * 2 + $0[2] * 3 + $0[3]) % 4 != 0 }
            let perExample = try BooleanMask(shape: [3, 5, 6]) { $0[2] <= $0[1] + $0[0] }
            let batched = try attention(query: q, key: k, value: v, mask: perHead, rotary: rope)
            let batchedShared = try attention(query: q, key: k, value: v, mask: perExample)
            for b in 0 ..< 3 {
                let (qb, kb, vb) = (try batchElement(q, b), try batchElement(k, b), try batchElement(v, b))
                expectFixtureClose(
                    try batchElement(batched, b),
                    try attention(query: qb, key: kb, value: vb, mask: batchElement(perHead, b), rotary: rope),
                    rtol: 1e-6, atol: 1e-6, "example \(b), (B, H, L, S) mask")
                expectFixtureClose(
                    try batchElement(batchedShared, b), try attention(query: qb, key: kb, value: vb, mask: batchElement(perExample, b)),
                    rtol: 1e-6, atol: 1e-6, "example \(b), (B, L, S) mask")
            }
            // A (L, S) mask is shared by the batch.
            let shared = try BooleanMask(shape: [5, 6]) { $0[1] != 2 }
            let sharedOut = try attention(query: q, key: k, value: v, mask: shared)
            let expandedMask = try BooleanMask(shape: [3, 5, 6]) { $0[2] != 2 }
            #expect(sharedOut == (try attention(query: q, key: k, value: v, mask: expandedMask)))
        }

        @Test(arguments: [[2, 9], [3, 7, 9]])
        func equalsADoublePrecisionReference(shape: [Int]) throws {
            // Independent of the fixtures: Equinox's formula written out in Double.
            var rng = SeededGenerator(seed: 11)
            let attention = try MultiheadAttention(
                heads: 3, querySize: 9, keySize: 4, qkSize: 5, voSize: 2, useKeyBias: true, useValueBias: true,
                using: &rng)
            let lead = Array(shape.dropLast(2))
            let (l, s) = (shape[shape.count - 2], 4)
            let q = try Tensor(randomNormal: shape, using: &rng)
            let k = try Tensor(randomNormal: lead + [s, 4], using: &rng)
            let v = try Tensor(randomNormal: lead + [s, 9], using: &rng)
            let mask = try BooleanMask(shape: [3, l, s]) { ($0[0] + $0[1] + $0[2]) % 3 != 0 || $0[1] == 0 }
            let out = try attention(query: q, key: k, value: v, mask: shape.count == 2 ? mask : nil)
            func linear(_ x: [Double], _ layer: Linear, rows: Int) -> [Double] {
                let (o, i) = (layer.outputSize, layer.inputSize)
                let w = layer.weight.scalars.map(Double.init), b = layer.bias?.scalars.map(Double.init)
                return (0 ..< rows * o).map { index in
                    let (r, c) = (index / o, index % o)
                    return (0 ..< i).reduce(b?[c] ?? 0) { $0 + x[r * i + $1] * w[c * i + $1] }
                }
            }
            let batch = lead.first ?? 1
            var expected: [Double] = []
            for b in 0 ..< batch {
                let qb = try batchElement(shape.count == 2 ? q.reshaped([1] + q.shape) : q, b).scalars.map(Double.init)
                let kb = try batchElement(shape.count == 2 ? k.reshaped([1] + k.shape) : k, b).scalars.map(Double.init)
                let vb = try batchElement(shape.count == 2 ? v.reshaped([1] + v.shape) : v, b).scalars.map(Double.init)
                let qh = linear(qb, attention.queryProjection, rows: l), kh = linear(kb, attention.keyProjection, rows: s)
                let vh = linear(vb, attention.valueProjection, rows: s)
                var joined = [Double](repeating: 0, count: l * 3 * 2)
                for h in 0 ..< 3 {
                    for i in 0 ..< l {
                        var scores = (0 ..< s).map { j in
                            (0 ..< 5).reduce(0.0) { $0 + qh[i * 15 + h * 5 + $1] / 5.0.squareRoot() * kh[j * 15 + h * 5 + $1] }
                        }
                        if shape.count == 2 {
                            for j in 0 ..< s where !mask.values[(h * l + i) * s + j] { scores[j] = -.greatestFiniteMagnitude }
                        }
                        let top = scores.max()!
                        let e = scores.map { exp($0 - top) }
                        let sum = e.reduce(0, +)
                        for c in 0 ..< 2 {
                            joined[i * 6 + h * 2 + c] = (0 ..< s).reduce(0.0) { $0 + e[$1] / sum * vh[$1 * 6 + h * 2 + c] }
                        }
                    }
                }
                expected += linear(joined, attention.outputProjection, rows: l)
            }
            expectFixtureClose(out, try Tensor(shape: out.shape, scalars: expected.map(Float.init)), rtol: 1e-5, atol: 1e-5)
        }

        // MARK: Initialisation

        @Test func initialisationIsEquinoxs() throws {
            var rng = SeededGenerator(seed: 12)
            let attention = try MultiheadAttention(
                heads: 4, querySize: 256, keySize: 64, valueSize: 100, outputSize: 48, qkSize: 32, voSize: 16,
                useQueryBias: true, useKeyBias: true, useValueBias: true, useOutputBias: true, using: &rng)
            #expect(attention.parameterShapes.map(\.name) == [
                "query_proj.weight", "query_proj.bias", "key_proj.weight", "key_proj.bias",
                "value_proj.weight", "value_proj.bias", "output_proj.weight", "output_proj.bias",
            ])
            #expect(attention.parameterShapes.map(\.shape) == [
                [128, 256], [128], [128, 64], [128], [64, 100], [64], [48, 64], [48],
            ])
            let layers: [(Linear, Int)] = [
                (attention.queryProjection, 256), (attention.keyProjection, 64), (attention.valueProjection, 100),
                (attention.outputProjection, 64),
            ]
            var weights: [Float] = [], biases: [Float] = []
            for (layer, fanIn) in layers {
                let limit = 1 / Double(fanIn).squareRoot()
                // U(-lim, lim) for weight and bias alike; scaled to U(-1, 1) to pool the samples.
                for value in layer.weight.scalars + layer.bias!.scalars {
                    #expect(abs(Double(value)) <= limit)
                }
                weights += layer.weight.scalars.map { Float(Double($0) / limit) }
                biases += layer.bias!.scalars.map { Float(Double($0) / limit) }
            }
            // U(-1, 1): mean 0, variance 1/3, fourth moment 1/5.
            expectMoments(weights, mean: 0, variance: 1.0 / 3, fourthMoment: 1.0 / 5, "weights")
            expectMoments(biases, mean: 0, variance: 1.0 / 3, fourthMoment: 1.0 / 5, "biases")
            // The same generator state gives the same module; query projection drawn first.
            var a = SeededGenerator(seed: 4), b = SeededGenerator(seed: 4)
            let first = try MultiheadAttention(heads: 2, querySize: 8, using: &a)
            #expect(first == (try MultiheadAttention(heads: 2, querySize: 8, using: &b)))
            var c = SeededGenerator(seed: 4)
            #expect(first.queryProjection == (try Linear(inputSize: 8, outputSize: 8, bias: false, using: &c)))
        }

        // MARK: Dropout

        /// heads 1, q = 0 (uniform weights 1/S), value heads all 1, identity output projection:
        /// each output element is (kept keys of its row) / (S (1 - p)).
        func keptFractionProbe(p: Float, length: Int, keyLength: Int) throws -> MultiheadAttention {
            var rng = SeededGenerator(seed: 13)
            var attention = try MultiheadAttention(
                heads: 1, querySize: 4, qkSize: 4, voSize: 1, useValueBias: true, dropoutProbability: p, using: &rng)
            attention.queryProjection.weight = try Tensor(zeros: [4, 4])
            attention.valueProjection.weight = try Tensor(zeros: [1, 4])
            attention.valueProjection.bias = try Tensor(ones: [1])
            attention.outputProjection.weight = try Tensor(ones: [4, 1])
            return attention
        }

        @Test func dropoutKeepsTheExpectedFractionAndIsDeterministic() throws {
            let (p, l, s): (Float, Int, Int) = (0.3, 64, 200)
            let attention = try keptFractionProbe(p: p, length: l, keyLength: s)
            var rng = SeededGenerator(seed: 14)
            let q = try Tensor(randomNormal: [l, 4], using: &rng)
            let kv = try Tensor(randomNormal: [s, 4], using: &rng)
            let out = try attention(query: q, key: kv, value: kv, dropoutSeed: 99)
            // Every row: a multiple of 1/(S (1-p)); overall mean ≈ 1 (the expectation is kept).
            let kept = out.scalars.enumerated().filter { $0.offset % 4 == 0 }.map { Double($0.element) * Double(s) * Double(1 - p) }
            for count in kept { #expect(abs(count - count.rounded()) < 1e-3) }
            let fraction = kept.reduce(0, +) / Double(l * s)
            let standardError = (Double(p) * Double(1 - p) / Double(l * s)).squareRoot()
            #expect(abs(fraction - Double(1 - p)) < 6 * standardError, "kept fraction \(fraction)")
            // Deterministic for a seed; another seed drops other weights.
            #expect(out == (try attention(query: q, key: kv, value: kv, dropoutSeed: 99)))
            #expect(out != (try attention(query: q, key: kv, value: kv, dropoutSeed: 100)))
            // inference: true (per call or on the module) disables it, and then needs no seed.
            let noDropout = try attention(query: q, key: kv, value: kv, inference: true)
            #expect(noDropout.scalars.allSatisfy { abs($0 - 1) < 1e-5 })
            var evaluating = attention
            evaluating.inference = true
            #expect(try evaluating(query: q, key: kv, value: kv) == noDropout)
            #expect(try evaluating(query: q, key: kv, value: kv, inference: false, dropoutSeed: 99) == out)
        }

        @Test func dropoutWithoutASeedThrows() throws {
            let attention = try keptFractionProbe(p: 0.1, length: 2, keyLength: 3)
            var rng = SeededGenerator(seed: 15)
            let x = try Tensor(randomNormal: [2, 4], using: &rng)
            expectModuleError(argument: "dropoutSeed") { _ = try attention(x) }
            expectModuleError(argument: "dropoutSeed") { _ = try attention(query: x, key: x, value: x, inference: false) }
            _ = try attention(x, inference: true)
            _ = try attention(x, dropoutSeed: 1)
        }

        // MARK: Errors

        @Test func constructionErrors() throws {
            var rng = SeededGenerator(seed: 16)
            expectModuleError(argument: "heads") { _ = try MultiheadAttention(heads: 0, querySize: 8, using: &rng) }
            expectModuleError(argument: "querySize") { _ = try MultiheadAttention(heads: 2, querySize: 0, using: &rng) }
            expectModuleError(argument: "keySize") {
                _ = try MultiheadAttention(heads: 2, querySize: 8, keySize: -1, using: &rng)
            }
            expectModuleError(argument: "outputSize") {
                _ = try MultiheadAttention(heads: 2, querySize: 8, outputSize: 0, using: &rng)
            }
            // query_size // num_heads = 0 by default.
            expectModuleError(argument: "qkSize", "querySize / heads") {
                _ = try MultiheadAttention(heads: 4, querySize: 2, using: &rng)
            }
            _ = try MultiheadAttention(heads: 4, querySize: 2, qkSize: 1, voSize: 1, using: &rng)
            expectModuleError(argument: "voSize") {
                _ = try MultiheadAttention(heads: 2, querySize: 8, voSize: 0, using: &rng)
            }
            for p: Float in [-0.1, 1, .nan] {
                expectModuleError(argument: "dropoutProbability") {
                    _ = try MultiheadAttention(heads: 2, querySize: 8, dropoutProbability: p, using: &rng)
                }
            }
        }

        @Test func callErrors() throws {
            var rng = SeededGenerator(seed: 17)
            var attention = try MultiheadAttention(heads: 2, querySize: 8, keySize: 6, valueSize: 5, using: &rng)
            let q = try Tensor(randomNormal: [4, 8], using: &rng)
            let k = try Tensor(randomNormal: [7, 6], using: &rng)
            let v = try Tensor(randomNormal: [7, 5], using: &rng)
            _ = try attention(query: q, key: k, value: v)
            // Ranks and sizes.
            expectModuleError(argument: "query") { _ = try attention(query: Tensor(zeros: [8]), key: k, value: v) }
            expectModuleError(argument: "query") {
                _ = try attention(query: Tensor(zeros: [1, 1, 4, 8]), key: k, value: v)
            }
            expectModuleError(argument: "query") { _ = try attention(query: Tensor(zeros: [4, 6]), key: k, value: v) }
            expectModuleError(argument: "key") { _ = try attention(query: q, key: Tensor(zeros: [7, 8]), value: v) }
            expectModuleError(argument: "key") { _ = try attention(query: q, key: Tensor(zeros: [1, 7, 6]), value: v) }
            expectModuleError(argument: "value") { _ = try attention(query: q, key: k, value: Tensor(zeros: [7, 6])) }
            // Key and value lengths must match (Equinox's ValueError).
            expectModuleError(argument: "value", "as many positions as the key") {
                _ = try attention(query: q, key: k, value: Tensor(zeros: [6, 5]))
            }
            // Batches must match.
            let qb = try Tensor(randomNormal: [2, 4, 8], using: &rng)
            expectModuleError(argument: "key") {
                _ = try attention(query: qb, key: Tensor(zeros: [3, 7, 6]), value: Tensor(zeros: [3, 7, 5]))
            }
            // Empty sequences are not errors: the library's rule (EmptyShapesTests).
            #expect(try attention(query: Tensor(zeros: [0, 8]), key: k, value: v).shape == [0, attention.outputSize])
            // Self-attention needs equal sizes: here the key size differs from the query's.
            expectModuleError(argument: "key") { _ = try attention(q) }

            // Masks: exactly (L, S) or (H, L, S), with B in front when batched.
            for shape in [[4, 6], [7, 4], [3, 4, 7], [1, 4, 7], [2, 2, 4, 7], [7], [4, 1]] {
                let mask = try BooleanMask(shape: shape) { _ in true }
                expectModuleError(argument: "mask", "[4, 7] (L, S)") { _ = try attention(query: q, key: k, value: v, mask: mask) }
            }
            _ = try attention(query: q, key: k, value: v, mask: BooleanMask(shape: [2, 4, 7]) { _ in true })
            let kb = try Tensor(randomNormal: [2, 7, 6], using: &rng), vb = try Tensor(randomNormal: [2, 7, 5], using: &rng)
            for shape in [[1, 4, 7], [3, 4, 7], [2, 1, 4, 7], [1, 2, 4, 7], [2, 2, 2, 4, 7]] {
                let mask = try BooleanMask(shape: shape) { _ in true }
                expectModuleError(argument: "mask", "(B, H, L, S)") { _ = try attention(query: qb, key: kb, value: vb, mask: mask) }
            }
            for shape in [[4, 7], [2, 4, 7], [2, 2, 4, 7]] {
                _ = try attention(query: qb, key: kb, value: vb, mask: BooleanMask(shape: shape) { _ in true })
            }

            // processHeads must keep the shapes (Equinox's ValueError).
            expectModuleError(argument: "processHeads", "must not change the shape") {
                _ = try attention(query: q, key: k, value: v) { heads in
                    heads.value = try heads.value.reshaped([7, 1, 8])
                }
            }
            expectModuleError(argument: "processHeads", "query heads") {
                _ = try attention(query: q, key: k, value: v) { heads in
                    heads.query = try Tensor(zeros: [4, 2, 5])
                }
            }
            struct HookFailure: Error {}
            #expect(throws: HookFailure.self) {
                _ = try attention(query: q, key: k, value: v) { _ in throw HookFailure() }
            }
            // A rotary embedding must have qkSize features.
            expectModuleError(argument: "rotary") {
                _ = try attention(query: q, key: k, value: v, rotary: RotaryPositionalEmbedding(embeddingSize: 8))
            }
            // Projections replaced by inconsistent ones.
            attention.queryProjection = try Linear(inputSize: 8, outputSize: 6, bias: false, using: &rng)
            expectModuleError(argument: "queryProjection.weight") { _ = try attention(query: q, key: k, value: v) }
        }

        // MARK: RotaryPositionalEmbedding

        @Test(arguments: [
            "eqx_rope_e8_theta10000", "eqx_rope_e8_theta500", "eqx_rope_e16_theta10000", "eqx_rope_e16_theta500",
            "eqx_rope_batched",
        ])
        func rotaryMatchesEquinox(name: String) throws {
            let fixture = try ModuleFixture(name)
            let config = try fixture.config
            let rope = try RotaryPositionalEmbedding(
                embeddingSize: try #require(config["embedding_size"] as? Int),
                theta: Float(try #require(config["theta"] as? Double)))
            let x = try fixture.tensor("input.x"), expected = try fixture.tensor("output.out")
            expectFixtureClose(try rope(x), expected)
            var inPlace = x
            try rope.rotate(&inPlace)
            expectFixtureClose(inPlace, expected)
            #expect(x == (try fixture.tensor("input.x")))   // the input is untouched
            // As one head of (L, 1, E) and of (1, L, E) in the heads-first layout.
            var asHeads = try x.reshaped(Array(x.shape.dropLast()) + [1, rope.embeddingSize])
            try rope.rotateHeads(&asHeads)
            expectFixtureClose(try asHeads.reshaped(x.shape), expected)
            if x.rank == 2 {
                var headsFirst = try x.reshaped([1] + x.shape)
                try rope.rotateHeads(&headsFirst, layout: .heads)
                expectFixtureClose(try headsFirst.reshaped(x.shape), expected)
            }
            #expect(rope.parameterPaths.isEmpty)
        }

        /// Equinox's cache keys the frequencies by size and dtype only, so a second instance with
        /// another theta reused the first one's; here each instance keeps its own.
        @Test func instancesWithDifferentThetaAreIndependent() throws {
            let a = try ModuleFixture("eqx_rope_e8_theta10000"), b = try ModuleFixture("eqx_rope_e8_theta500")
            let rope10000 = try RotaryPositionalEmbedding(embeddingSize: 8, theta: 10_000)
            let rope500 = try RotaryPositionalEmbedding(embeddingSize: 8, theta: 500)
            for _ in 0 ..< 2 {
                expectFixtureClose(try rope10000(a.tensor("input.x")), try a.tensor("output.out"), "theta 10000")
                expectFixtureClose(try rope500(b.tensor("input.x")), try b.tensor("output.out"), "theta 500")
            }
            let x = try a.tensor("input.x")
            #expect(try rope10000(x) != rope500(x))
            // The same in attention, one theta after the other.
            for name in ["eqx_mha_rope_theta10000", "eqx_mha_rope_theta100", "eqx_mha_rope_theta10000"] {
                let fixture = try ModuleFixture(name)
                let attention = try equinoxAttention(fixture)
                let theta: Float = name.hasSuffix("100") ? 100 : 10_000
                let out = try attention(
                    query: fixture.tensor("input.query"), key: fixture.tensor("input.key"),
                    value: fixture.tensor("input.value"), rotary: RotaryPositionalEmbedding(embeddingSize: 8, theta: theta))
                expectFixtureClose(out, try fixture.tensor("output.out"), "\(name)")
            }
        }

        @Test(arguments: RotaryPositionalEmbedding.Pairing.allCases)
        func rotaryMatchesADoublePrecisionReference(pairing: RotaryPositionalEmbedding.Pairing) throws {
            var rng = SeededGenerator(seed: 18)
            let (l, d, offset) = (40, 24, 5)
            let rope = try RotaryPositionalEmbedding(embeddingSize: d, theta: 1000, pairing: pairing)
            let x = try Tensor(randomNormal: [2, l, d], using: &rng)
            let xs = x.scalars.map(Double.init)
            var expected = [Double](repeating: 0, count: xs.count)
            for row in 0 ..< 2 * l {
                let p = Double(row % l + offset)
                for i in 0 ..< d / 2 {
                    let angle = p * pow(1000, -2 * Double(i) / Double(d))
                    let (a, b) = pairing == .halfSplit ? (i, i + d / 2) : (2 * i, 2 * i + 1)
                    expected[row * d + a] = xs[row * d + a] * cos(angle) - xs[row * d + b] * sin(angle)
                    expected[row * d + b] = xs[row * d + b] * cos(angle) + xs[row * d + a] * sin(angle)
                }
            }
            expectFixtureClose(
                try rope(x, positionOffset: offset), try Tensor(shape: x.shape, scalars: expected.map(Float.init)),
                rtol: 1e-5, atol: 1e-5)
        }

        @Test func positionOffsetContinuesTheSequence() throws {
            var rng = SeededGenerator(seed: 19)
            let rope = try RotaryPositionalEmbedding(embeddingSize: 16)
            let x = try Tensor(randomNormal: [12, 16], using: &rng)
            let whole = try rope(x)
            expectFixtureClose(try rope(sliceRows(x, 7 ..< 12), positionOffset: 7), try sliceRows(whole, 7 ..< 12), rtol: 0, atol: 1e-6)
            // Heads: (B, L, H, E) and (B, H, L, E) agree with per-head sequences.
            let heads = try Tensor(randomNormal: [2, 12, 3, 16], using: &rng)
            var rotated = heads
            try rope.rotateHeads(&rotated, positionOffset: 2)
            var headsFirst = try heads.permuted([0, 2, 1, 3])
            try rope.rotateHeads(&headsFirst, layout: .heads, positionOffset: 2)
            #expect(try headsFirst.permuted([0, 2, 1, 3]) == rotated)
            let oneHead = try rope(heads.permuted([0, 2, 1, 3]), positionOffset: 2)
            #expect(try oneHead.permuted([0, 2, 1, 3]) == rotated)
            // Size 0 is allowed, as in Equinox, and changes nothing.
            let empty = try RotaryPositionalEmbedding(embeddingSize: 0)
            #expect(try empty(Tensor(zeros: [3, 0])).shape == [3, 0])
        }

        @Test func rotaryErrors() throws {
            expectModuleError(argument: "embeddingSize", "must be even") { _ = try RotaryPositionalEmbedding(embeddingSize: 7) }
            expectModuleError(argument: "embeddingSize", "negative") { _ = try RotaryPositionalEmbedding(embeddingSize: -2) }
            for theta: Float in [0, -1, .infinity, .nan] {
                expectModuleError(argument: "theta") { _ = try RotaryPositionalEmbedding(embeddingSize: 8, theta: theta) }
            }
            let rope = try RotaryPositionalEmbedding(embeddingSize: 8)
            expectModuleError(argument: "x") { _ = try rope(Tensor(zeros: [8])) }
            expectModuleError(argument: "x") { _ = try rope(Tensor(zeros: [5, 6])) }
            expectModuleError(argument: "positionOffset") { _ = try rope(Tensor(zeros: [5, 8]), positionOffset: -1) }
            var heads = try Tensor(zeros: [5, 8])
            expectModuleError(argument: "heads") { try rope.rotateHeads(&heads) }
            var wide = try Tensor(zeros: [5, 2, 6])
            expectModuleError(argument: "heads") { try rope.rotateHeads(&wide) }
        }
    }
}
