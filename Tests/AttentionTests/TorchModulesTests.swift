import Foundation
import Testing
import Attention

// MARK: - Fixture support (shared by the TorchMultiheadAttention, encoder and SqueezeExcitation tests)

/// One reference fixture of `Tests/AttentionTests/Fixtures`: its tensors and its `config`.
struct TorchFixture {
    let name: String
    let file: SafeTensors
    let config: [String: Any]

    init(_ name: String) throws {
        self.name = name
        file = try SafeTensors(contentsOf: fixtureURL(name))
        let json = try #require(file.metadata["config"]?.data(using: .utf8))
        config = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
    }

    func int(_ key: String) throws -> Int { try #require(config[key] as? Int, "config \(key) in \(name)") }
    func bool(_ key: String) throws -> Bool { try #require(config[key] as? Bool, "config \(key) in \(name)") }
    func string(_ key: String) throws -> String { try #require(config[key] as? String, "config \(key) in \(name)") }
    func has(_ key: String) -> Bool { config[key] != nil && !(config[key] is NSNull) }

    func tensor(_ key: String) throws -> Tensor { try file.tensor(named: key) }

    /// A mask input as PyTorch's dtype says: BOOL is PyTorch's `true` = masked, floats are added.
    func torchMask(_ key: String) throws -> TorchMask? {
        guard file.contains(key) else { return nil }
        if try file.dtype(of: key) == .bool {
            return .disallowed(try BooleanMask(shape: file.shape(of: key), values: file.booleans(named: key)))
        }
        return .additive(try file.tensor(named: key))
    }

    /// A boolean mask input in Equinox's polarity (`true` = attend).
    func allowedMask(_ key: String) throws -> TorchMask? {
        guard file.contains(key) else { return nil }
        return .allowed(try BooleanMask(shape: file.shape(of: key), values: file.booleans(named: key)))
    }
}

/// Elements `range` of axis 0 of `tensor`, or `tensor` transposed first when `axis` is 1.
func torchTestSlice(_ tensor: Tensor, _ index: Int, axis: Int) throws -> Tensor {
    let sliced = try tensor.sliced(index..<(index + 1), axis: axis)
    var shape = sliced.shape
    shape.remove(at: axis)
    return try sliced.reshaped(shape)
}

// MARK: - TorchMultiheadAttention

extension KernelTests {
    @Suite("TorchMultiheadAttention")
    struct TorchMultiheadAttentionTests {
        static let fixtures = [
            "torch_mha_default", "torch_mha_weights_per_head", "torch_mha_no_weights", "torch_mha_kdim_vdim",
            "torch_mha_no_bias", "torch_mha_bias_kv_zero_attn", "torch_mha_bias_kv_zero_attn_no_weights",
            "torch_mha_kpm_bool", "torch_mha_kpm_float", "torch_mha_attn_mask_bool",
            "torch_mha_attn_mask_float_3d_batched", "torch_mha_is_causal", "torch_mha_masked_row_weights",
            "torch_mha_masked_row_no_weights", "torch_mha_batch_first", "torch_mha_seq_first_batched",
        ]

        /// The module a fixture's config describes, with the fixture's parameters.
        static func module(_ fixture: TorchFixture) throws -> TorchMultiheadAttention {
            var rng = SeededGenerator(seed: 0)
            var mha = try TorchMultiheadAttention(
                embedDim: fixture.int("embed_dim"), heads: fixture.int("num_heads"), bias: fixture.bool("bias"),
                addBiasKV: fixture.bool("add_bias_kv"), addZeroAttention: fixture.bool("add_zero_attn"),
                keyDim: fixture.int("kdim"), valueDim: fixture.int("vdim"), batchFirst: fixture.bool("batch_first"),
                using: &rng)
            try mha.loadParameters(from: fixture.file, prefix: "param.")
            return mha
        }

        @Test(arguments: fixtures)
        func matchesPyTorch(name: String) throws {
            let fixture = try TorchFixture(name)
            let mha = try Self.module(fixture)
            let query = try fixture.tensor("input.query")
            // Self-attention passes one tensor three times, as the fixture's torch call did.
            let selfAttention = try fixture.bool("self_attention")
            let key = selfAttention ? query : try fixture.tensor("input.key")
            let value = selfAttention ? query : try fixture.tensor("input.value")
            let result = try mha(
                query: query, key: key, value: value, keyPaddingMask: fixture.torchMask("input.key_padding_mask"),
                needWeights: fixture.bool("need_weights"), attentionMask: fixture.torchMask("input.attn_mask"),
                averageAttentionWeights: fixture.bool("average_attn_weights"), isCausal: fixture.bool("is_causal"))
            let (out, weights) = (result.output, result.weights)
            expectFixtureClose(out, try fixture.tensor("output.out"), "\(name) output")
            if fixture.file.contains("output.weights") {
                let w = try #require(weights, "\(name): weights expected")
                expectFixtureClose(w, try fixture.tensor("output.weights"), "\(name) weights")
            } else {
                #expect(weights == nil)
            }
        }

        @Test func fullyMaskedRowsFollowTorch() throws {
            // need_weights: NaN row in output and weights; SDPA path: exactly out_proj.bias.
            let fixture = try TorchFixture("torch_mha_masked_row_no_weights")
            let mha = try Self.module(fixture)
            let out = try mha(
                query: fixture.tensor("input.query"), key: fixture.tensor("input.key"),
                value: fixture.tensor("input.value"), needWeights: false,
                attentionMask: fixture.torchMask("input.attn_mask")).output
            #expect(try torchTestSlice(out, 2, axis: 0) == mha.outProjection.bias!)
            let nanResult = try mha(
                query: fixture.tensor("input.query"), key: fixture.tensor("input.key"),
                value: fixture.tensor("input.value"), attentionMask: fixture.torchMask("input.attn_mask"))
            let (nanOut, nanWeights) = (nanResult.output, nanResult.weights)
            #expect(try torchTestSlice(nanOut, 2, axis: 0).scalars.allSatisfy(\.isNaN))
            #expect(try torchTestSlice(nanWeights!, 2, axis: 0).scalars.allSatisfy(\.isNaN))
            #expect(try torchTestSlice(nanOut, 1, axis: 0).scalars.allSatisfy(\.isFinite))
        }

        // MARK: Paths agree

        static func randomModule(
            embedDim: Int = 16, heads: Int = 4, dropout: Float = 0, addBiasKV: Bool = false,
            addZeroAttention: Bool = false, keyDim: Int? = nil, valueDim: Int? = nil, batchFirst: Bool = false,
            seed: UInt64 = 1
        ) throws -> TorchMultiheadAttention {
            var rng = SeededGenerator(seed: seed)
            var mha = try TorchMultiheadAttention(
                embedDim: embedDim, heads: heads, dropout: dropout, addBiasKV: addBiasKV,
                addZeroAttention: addZeroAttention, keyDim: keyDim, valueDim: valueDim, batchFirst: batchFirst,
                using: &rng)
            // Non-zero biases, so that every bias is exercised.
            mha.inProjectionBias = try Tensor(randomNormal: [3 * embedDim], standardDeviation: 0.3, using: &rng)
            mha.outProjection.bias = try Tensor(randomNormal: [embedDim], standardDeviation: 0.3, using: &rng)
            return mha
        }

        @Test(arguments: [false, true], [false, true])
        func packedSelfAttentionEqualsSeparateInputs(needWeights: Bool, appended: Bool) throws {
            let mha = try Self.randomModule(addBiasKV: appended, addZeroAttention: appended)
            var rng = SeededGenerator(seed: 5)
            let x = try Tensor(randomNormal: [7, 3, 16], using: &rng)
            // Copies with their own storage take the three-projection path.
            let (k, v) = (try x.reshaped([7, 3, 16]).scaled(by: 1), try x.scaled(by: 1))
            let packed = try mha(query: x, key: x, value: x, needWeights: needWeights)
            let separate = try mha(query: x, key: k, value: v, needWeights: needWeights)
            let keyValueShared = try mha(query: x, key: k, value: k, needWeights: needWeights)
            expectFixtureClose(packed.output, separate.output, rtol: 1e-6, atol: 1e-6)
            expectFixtureClose(keyValueShared.output, separate.output, rtol: 1e-6, atol: 1e-6)
            if needWeights { expectFixtureClose(packed.weights!, separate.weights!, rtol: 1e-6, atol: 1e-6) }
        }

        @Test func weightsPathAndFusedPathAgree() throws {
            let mha = try Self.randomModule(addBiasKV: true, addZeroAttention: true)
            var rng = SeededGenerator(seed: 6)
            let q = try Tensor(randomNormal: [5, 2, 16], using: &rng)
            let kv = try Tensor(randomNormal: [9, 2, 16], using: &rng)
            let padding = try TorchMask.disallowed(BooleanMask(shape: [2, 9]) { $0[0] == 1 && $0[1] % 3 == 0 })
            let mask = try TorchMask.additive(Tensor(randomNormal: [5, 9], using: &rng))
            let withWeights = try mha(query: q, key: kv, value: kv, keyPaddingMask: padding, attentionMask: mask)
            let fused = try mha(
                query: q, key: kv, value: kv, keyPaddingMask: padding, needWeights: false, attentionMask: mask)
            expectFixtureClose(fused.output, withWeights.output, rtol: 1e-5, atol: 1e-5)
            #expect(withWeights.weights?.shape == [2, 5, 11])
        }

        /// Every mask form against the same mask written as a float `(N·H, L, S)` tensor.
        @Test(arguments: [false, true])
        func maskFormsAreEquivalent(needWeights: Bool) throws {
            let mha = try Self.randomModule(batchFirst: true)
            var rng = SeededGenerator(seed: 7)
            let (n, h, l, s) = (2, 4, 5, 6)
            let q = try Tensor(randomNormal: [n, l, 16], using: &rng)
            let kv = try Tensor(randomNormal: [n, s, 16], using: &rng)
            let masked = try BooleanMask(shape: [l, s]) { ($0[0] * 7 + $0[1] * 3) % 5 == 0 && $0[1] != 0 }
            let padded = try BooleanMask(shape: [n, s]) { $0[0] == 1 && $0[1] >= 4 }
            func run(_ kpm: TorchMask?, _ mask: TorchMask?) throws -> (Tensor, Tensor?) {
                let r = try mha(
                    query: q, key: kv, value: kv, keyPaddingMask: kpm, needWeights: needWeights, attentionMask: mask,
                    averageAttentionWeights: false)
                return (r.output, r.weights)
            }
            // The reference: one float (N·H, L, S) mask holding both.
            var full = [Float]()
            for b in 0..<n { for _ in 0..<h { for i in 0..<l { for j in 0..<s {
                full.append(masked.values[i * s + j] || padded.values[b * s + j] ? -.infinity : 0)
            } } } }
            let reference = try run(nil, .additive(Tensor(shape: [n * h, l, s], scalars: full)))
            let floatKPM = TorchMask.additive(try Tensor(shape: [n, s], scalars: padded.values.map { $0 ? -.infinity : 0 }))
            let allowedMask = TorchMask.allowed(try BooleanMask(shape: [l, s], values: masked.values.map { !$0 }))
            let rank4 = TorchMask.disallowed(try BooleanMask(shape: [1, 1, l, s], values: masked.values))
            for (kpm, mask) in [
                (TorchMask.disallowed(padded), TorchMask.disallowed(masked)), (floatKPM, .disallowed(masked)),
                (.disallowed(padded), allowedMask), (.disallowed(padded), rank4),
            ] {
                let result = try run(kpm, mask)
                expectFixtureClose(result.0, reference.0, rtol: 1e-6, atol: 1e-6)
                if needWeights { expectFixtureClose(result.1!, reference.1!, rtol: 1e-6, atol: 1e-6) }
            }
            // A genuinely additive key padding mask with a boolean attention mask, and both float.
            let soft = try Tensor(randomNormal: [n, s], using: &rng)
            let softMask = try Tensor(randomNormal: [l, s], using: &rng)
            var softFull = [Float]()
            for b in 0..<n { for _ in 0..<h { for i in 0..<l { for j in 0..<s {
                softFull.append(softMask[i, j] + soft[b, j])
            } } } }
            let softReference = try run(nil, .additive(Tensor(shape: [n * h, l, s], scalars: softFull)))
            let softResult = try run(.additive(soft), .additive(softMask))
            expectFixtureClose(softResult.0, softReference.0, rtol: 1e-5, atol: 1e-5)
        }

        @Test func isCausalIsPyTorchsHint() throws {
            let mha = try Self.randomModule()
            var rng = SeededGenerator(seed: 8)
            let x = try Tensor(randomNormal: [6, 16], using: &rng)
            let causal = try TorchMask.squareSubsequent(6)
            let other = try TorchMask.disallowed(BooleanMask(shape: [6, 6]) { $0[0] == 0 && $0[1] == 5 })
            let reference = try mha(query: x, key: x, value: x, needWeights: false, attentionMask: causal).output
            // need_weights=False without key padding: the mask is replaced by the causal kernel.
            let hinted = try mha(query: x, key: x, value: x, needWeights: false, attentionMask: other, isCausal: true)
            expectFixtureClose(hinted.output, reference, rtol: 1e-6, atol: 1e-6)
            // need_weights=True: the given mask is used.
            let withWeights = try mha(query: x, key: x, value: x, attentionMask: other, isCausal: true)
            let plain = try mha(query: x, key: x, value: x, attentionMask: other)
            #expect(withWeights.output == plain.output)
            // With a key padding mask: the given mask is used.
            let none = try TorchMask.disallowed(BooleanMask(shape: [6]) { _ in false })
            let padded = try mha(
                query: x, key: x, value: x, keyPaddingMask: none, needWeights: false, attentionMask: other, isCausal: true)
            let unpadded = try mha(query: x, key: x, value: x, needWeights: false, attentionMask: other)
            expectFixtureClose(padded.output, unpadded.output, rtol: 1e-6, atol: 1e-6)
        }

        // MARK: Batched equals per example

        @Test(arguments: [false, true], [false, true])
        func batchedEqualsPerExample(batchFirst: Bool, needWeights: Bool) throws {
            let mha = try Self.randomModule(addBiasKV: true, keyDim: 6, valueDim: 10, batchFirst: batchFirst)
            var rng = SeededGenerator(seed: 9)
            let (n, h, l, s) = (3, 4, 5, 7)
            func input(_ width: Int, _ length: Int) throws -> Tensor {
                try Tensor(randomNormal: batchFirst ? [n, length, width] : [length, n, width], using: &rng)
            }
            let (q, k, v) = (try input(16, l), try input(6, s), try input(10, s))
            let padding = try BooleanMask(shape: [n, s]) { ($0[0] + $0[1]) % 4 == 3 }
            let perHead = try Tensor(randomNormal: [n * h, l, s], using: &rng)
            let batched = try mha(
                query: q, key: k, value: v, keyPaddingMask: .disallowed(padding), needWeights: needWeights,
                attentionMask: .additive(perHead), averageAttentionWeights: false)
            let axis = batchFirst ? 0 : 1
            for b in 0..<n {
                let single = try mha(
                    query: torchTestSlice(q, b, axis: axis), key: torchTestSlice(k, b, axis: axis),
                    value: torchTestSlice(v, b, axis: axis),
                    keyPaddingMask: .disallowed(BooleanMask(shape: [s], values: Array(padding.values[(b * s)..<((b + 1) * s)]))),
                    needWeights: needWeights, attentionMask: .additive(perHead.sliced((b * h)..<((b + 1) * h))),
                    averageAttentionWeights: false)
                expectFixtureClose(single.output, try torchTestSlice(batched.output, b, axis: axis), rtol: 1e-6, atol: 1e-6)
                if needWeights {
                    expectFixtureClose(single.weights!, try torchTestSlice(batched.weights!, b, axis: 0), rtol: 1e-6, atol: 1e-6)
                }
            }
        }

        // MARK: Dropout

        @Test func dropoutIsSeededAndOnlyInTraining() throws {
            let mha = try Self.randomModule(dropout: 0.3)
            var rng = SeededGenerator(seed: 10)
            let x = try Tensor(randomNormal: [12, 2, 16], using: &rng)
            let eval = try mha(query: x, key: x, value: x, averageAttentionWeights: false)
            let evalNoWeights = try mha(query: x, key: x, value: x, needWeights: false)
            let first = try mha(query: x, key: x, value: x, averageAttentionWeights: false, training: true, dropoutSeed: 3)
            let again = try mha(query: x, key: x, value: x, averageAttentionWeights: false, training: true, dropoutSeed: 3)
            let other = try mha(query: x, key: x, value: x, averageAttentionWeights: false, training: true, dropoutSeed: 4)
            #expect(first.output == again.output && first.weights == again.weights)
            #expect(first.output != other.output)
            #expect(first.output != eval.output)
            expectFixtureClose(evalNoWeights.output, eval.output, rtol: 1e-5, atol: 1e-5)
            // Both paths drop the same weights for one seed.
            let fused = try mha(query: x, key: x, value: x, needWeights: false, training: true, dropoutSeed: 3)
            expectFixtureClose(fused.output, first.output, rtol: 1e-5, atol: 1e-5)
            // Kept weights are scaled by 1/(1-p); about p of them are zero.
            let dropped = first.weights!.scalars, kept = eval.weights!.scalars
            var zeros = 0
            for (d, k) in zip(dropped, kept) {
                if d == 0 { zeros += 1 } else { #expect(abs(d - k / 0.7) <= 1e-5 * max(1, abs(d))) }
            }
            let fraction = Double(zeros) / Double(dropped.count)
            let sigma = (0.3 * 0.7 / Double(dropped.count)).squareRoot()
            #expect(abs(fraction - 0.3) <= 5 * sigma, "dropped fraction \(fraction)")
        }

        // MARK: Initialisation

        @Test func initialisationFollowsPyTorch() throws {
            var rng = SeededGenerator(seed: 11)
            let e = 256
            let mha = try TorchMultiheadAttention(embedDim: e, heads: 8, addBiasKV: true, using: &rng)
            #expect(mha.parameterShapes.map(\.name) == [
                "in_proj_weight", "in_proj_bias", "bias_k", "bias_v", "out_proj.weight", "out_proj.bias",
            ])
            // xavier_uniform on (3E, E): U(±a), a = √(6 / (E + 3E)); variance a²/3, fourth moment a⁴/5.
            let a = (6.0 / Double(4 * e)).squareRoot()
            let inProj = mha.inProjectionWeight!.scalars
            #expect(inProj.allSatisfy { abs(Double($0)) <= a })
            expectMoments(inProj, mean: 0, variance: a * a / 3, fourthMoment: pow(a, 4) / 5)
            // out_proj: U(±1/√E); biases zero.
            let limit = 1 / Double(e).squareRoot()
            expectMoments(mha.outProjection.weight.scalars, mean: 0, variance: limit * limit / 3, fourthMoment: pow(limit, 4) / 5)
            #expect(mha.inProjectionBias!.scalars.allSatisfy { $0 == 0 })
            #expect(mha.outProjection.bias!.scalars.allSatisfy { $0 == 0 })
            // bias_k, bias_v: xavier_normal on (1, 1, E): N(0, 1/E); fourth moment 3σ⁴.
            let variance = 1 / Double(e)
            for tensor in [mha.biasKey!, mha.biasValue!] {
                #expect(tensor.shape == [1, 1, e])
                expectMoments(tensor.scalars, mean: 0, variance: variance, fourthMoment: 3 * variance * variance)
            }
            #expect(mha.biasKey != mha.biasValue)
            // Separate weights: xavier_uniform with fans (in, E).
            let separate = try TorchMultiheadAttention(embedDim: e, heads: 8, bias: false, keyDim: 64, valueDim: 512, using: &rng)
            #expect(separate.parameterShapes.map(\.name) == ["q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"])
            for (tensor, fanIn) in [(separate.queryProjectionWeight!, e), (separate.keyProjectionWeight!, 64), (separate.valueProjectionWeight!, 512)] {
                let bound = (6.0 / Double(fanIn + e)).squareRoot()
                expectMoments(tensor.scalars, mean: 0, variance: bound * bound / 3, fourthMoment: pow(bound, 4) / 5)
            }
            #expect(separate.inProjectionBias == nil && separate.outProjection.bias == nil)
        }

        @Test func parametersRoundTripThroughSafeTensors() throws {
            let mha = try Self.randomModule(addBiasKV: true, keyDim: 6)
            let file = try mha.safeTensors(prefix: "attn")
            var rng = SeededGenerator(seed: 99)
            var loaded = try TorchMultiheadAttention(embedDim: 16, heads: 4, addBiasKV: true, keyDim: 6, using: &rng)
            #expect(loaded != mha)
            try loaded.loadParameters(from: file, prefix: "attn")
            #expect(loaded == mha)
        }

        // MARK: Errors

        @Test func constructorErrors() {
            var rng = SeededGenerator(seed: 0)
            for (arguments, name) in [
                ((0, 1, Float(0), 8), "embedDim"), ((8, 0, 0, 8), "heads"), ((10, 3, 0, 10), "heads"),
                ((8, 2, 1, 8), "dropout"), ((8, 2, -0.1, 8), "dropout"), ((8, 2, 0, 0), "keyDim"),
            ] {
                let error = expectAttentionError {
                    _ = try TorchMultiheadAttention(
                        embedDim: arguments.0, heads: arguments.1, dropout: arguments.2, keyDim: arguments.3, using: &rng)
                }
                #expect(error?.argument == name && error?.isInvalidArgument == true, "\(arguments): \(String(describing: error))")
            }
            let error = expectAttentionError { _ = try TorchMultiheadAttention(embedDim: 10, heads: 3, using: &rng) }
            #expect("\(error!)".contains("embed_dim must be divisible by num_heads"))
        }

        @Test func forwardShapeErrors() throws {
            let mha = try Self.randomModule(keyDim: 6)   // separate weights: kdim 6, vdim 16
            let packed = try Self.randomModule()
            func t(_ shape: [Int]) throws -> Tensor { try Tensor(zeros: shape) }
            func b(_ shape: [Int]) throws -> TorchMask { .disallowed(try BooleanMask(shape: shape) { _ in false }) }
            let q = try t([5, 16]), k = try t([7, 6]), v = try t([7, 16])
            let cases: [(String, String, () throws -> Void)] = [
                ("query rank 1", "query", { _ = try mha(query: t([16]), key: k, value: v) }),
                ("query rank 4", "query", { _ = try mha(query: t([1, 1, 5, 16]), key: k, value: v) }),
                ("key rank", "key", { _ = try mha(query: q, key: t([1, 7, 6]), value: v) }),
                ("value rank", "value", { _ = try mha(query: q, key: k, value: t([1, 7, 16])) }),
                ("kpm rank unbatched", "keyPaddingMask", { _ = try mha(query: q, key: k, value: v, keyPaddingMask: b([1, 7])) }),
                ("kpm rank batched", "keyPaddingMask", {
                    _ = try mha(query: t([5, 2, 16]), key: t([7, 2, 6]), value: t([7, 2, 16]), keyPaddingMask: b([7])) }),
                ("mask rank 1", "attentionMask", { _ = try mha(query: q, key: k, value: v, attentionMask: b([7])) }),
                ("mask rank 4 unbatched", "attentionMask", { _ = try mha(query: q, key: k, value: v, attentionMask: b([1, 4, 5, 7])) }),
                ("unbatched 3-D mask", "attentionMask", { _ = try mha(query: q, key: k, value: v, attentionMask: b([8, 5, 7])) }),
                ("embedding", "query", { _ = try mha(query: t([5, 8]), key: k, value: v) }),
                ("kdim", "key", { _ = try mha(query: q, key: t([7, 16]), value: v) }),
                ("vdim", "value", { _ = try mha(query: q, key: k, value: t([7, 6])) }),
                ("key/value lengths", "value", { _ = try mha(query: q, key: k, value: t([8, 16])) }),
                ("packed key/value shapes", "value", { _ = try packed(query: q, key: t([7, 16]), value: t([6, 16])) }),
                ("batch", "key", { _ = try packed(query: t([5, 2, 16]), key: t([7, 3, 16]), value: t([7, 3, 16])) }),
                ("2-D mask", "attentionMask", { _ = try mha(query: q, key: k, value: v, attentionMask: b([5, 6])) }),
                ("3-D mask", "attentionMask", {
                    _ = try mha(query: t([5, 2, 16]), key: t([7, 2, 6]), value: t([7, 2, 16]), attentionMask: b([4, 5, 7])) }),
                ("4-D mask", "attentionMask", {
                    _ = try mha(query: t([5, 2, 16]), key: t([7, 2, 6]), value: t([7, 2, 16]), attentionMask: b([2, 2, 5, 7])) }),
                ("kpm length", "keyPaddingMask", { _ = try mha(query: q, key: k, value: v, keyPaddingMask: b([6])) }),
                ("kpm batch", "keyPaddingMask", {
                    _ = try mha(query: t([5, 2, 16]), key: t([7, 2, 6]), value: t([7, 2, 16]), keyPaddingMask: b([3, 7])) }),
            ]
            for (label, argument, body) in cases {
                let error = expectAttentionError(body)
                #expect(error?.argument == argument && error?.isShapeMismatch == true, "\(label): \(String(describing: error))")
            }
            // is_causal without attn_mask: PyTorch's RuntimeError.
            let causal = expectAttentionError { _ = try packed(query: q, key: q, value: q, needWeights: false, isCausal: true) }
            #expect(causal?.argument == "isCausal" && "\(causal!)".contains("Need attn_mask"))
            // No key at all: zero attention, so the output projection's bias (EmptyShapesTests).
            let empty = try packed(query: q, key: t([0, 16]), value: t([0, 16]))
            #expect(empty.weights?.count == 0)
            // Parameters changed to inconsistent shapes.
            var broken = packed
            broken.inProjectionWeight = try t([16, 16])
            #expect(expectAttentionError { _ = try broken(query: q, key: q, value: q) }?.argument == "inProjectionWeight")
            broken = packed
            broken.biasKey = try t([1, 1, 16])
            #expect(expectAttentionError { _ = try broken(query: q, key: q, value: q) }?.argument == "biasValue")
            broken = packed
            broken.dropout = 1
            #expect(expectAttentionError { _ = try broken(query: q, key: q, value: q) }?.argument == "dropout")
        }

        @Test func emptyBatchOrQueries() throws {
            let mha = try Self.randomModule(batchFirst: true)
            let empty = try mha(query: Tensor(zeros: [0, 5, 16]), key: Tensor(zeros: [0, 4, 16]), value: Tensor(zeros: [0, 4, 16]))
            let (out, weights) = (empty.output, empty.weights)
            #expect(out.shape == [0, 5, 16] && weights?.shape == [0, 5, 4])
            let unbatched = try mha(query: Tensor(zeros: [0, 16]), key: Tensor(zeros: [4, 16]), value: Tensor(zeros: [4, 16]),
                                    averageAttentionWeights: false)
            #expect(unbatched.output.shape == [0, 16] && unbatched.weights?.shape == [4, 0, 4])
        }

        @Test func squareSubsequentMaskIsPyTorchs() throws {
            let mask = try TorchMask.squareSubsequent(3)
            #expect(mask == .additive(try Tensor(shape: [3, 3], scalars: [0, -.infinity, -.infinity, 0, 0, -.infinity, 0, 0, 0])))
            #expect(mask.isCausal(length: 3) && !mask.isCausal(length: 4))
            #expect(try TorchMask.disallowed(BooleanMask(shape: [3, 3]) { $0[1] > $0[0] }).isCausal(length: 3))
            #expect(try TorchMask.allowed(BooleanMask(shape: [3, 3]) { $0[1] <= $0[0] }).isCausal(length: 3))
            #expect(try !TorchMask.allowed(BooleanMask(shape: [3, 3]) { _ in true }).isCausal(length: 3))
            #expect(expectAttentionError { _ = try TorchMask.squareSubsequent(-1) }?.argument == "size")
        }
    }
}
