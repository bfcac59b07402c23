import Foundation
import Testing
@testable import Attention

/// Runs `module` with its matrix-multiply weights in `dtype` and with those rounded weights widened
/// back to float32: the math is the same float32 accumulation over the same weight values, so the
/// outputs agree to float32 rounding. Also checks which parameters were converted.
func expectHalfWeightsMatchWidened<Module: ParameterizedModule>(
    _ module: Module, dtype: Tensor.DType, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation, run: (Module) throws -> [Tensor]
) throws {
    let half = try module.convertingWeights(to: dtype)
    let names = module.matrixWeightNames
    #expect(!names.isEmpty, sourceLocation: sourceLocation)
    for (name, tensor) in half.namedParameters {
        #expect(tensor.dtype == (names.contains(name) ? dtype : .float32), "\(name)", sourceLocation: sourceLocation)
    }
    let widened = try half.convertingWeights(to: .float32)
    for ((name, a), (_, b)) in zip(widened.namedParameters, half.namedParameters) {
        let exact = try b.converted(to: .float32)
        #expect(a == exact, "\(name)", sourceLocation: sourceLocation)
    }
    let outputs = try run(half), references = try run(widened)
    #expect(outputs.count == references.count, sourceLocation: sourceLocation)
    for (output, reference) in zip(outputs, references) {
        #expect(output.dtype == .float32, sourceLocation: sourceLocation)
        expectClose(output, reference.scalars.map(Double.init), shape: reference.shape, rtol: 1e-5, atol: 1e-5,
                    Comment(rawValue: "\(dtype) \(comment?.rawValue ?? "")"), sourceLocation: sourceLocation)
    }
}

/// attn.h's matrix-multiply bound for `linear`'s output `y` over the `input` values (row-major
/// `(rows, inputSize)`), against the double sum over the weights as stored:
/// |error| ≤ 1e-5 · (Σ|x w| + |b|) per element.
func expectWithinTheMatmulBound(
    _ y: Tensor, input: [Float], of linear: Linear, _ comment: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    let (inputs, outputs) = (linear.inputSize, linear.outputSize)
    let (ws, bs, ys) = (linear.weight.scalars, linear.bias?.scalars ?? Array(repeating: 0, count: outputs), y.scalars)
    for r in 0..<(input.count / inputs) {
        for o in 0..<outputs {
            var sum = Double(bs[o]), magnitude = abs(Double(bs[o]))
            for i in 0..<inputs {
                let term = Double(input[r * inputs + i]) * Double(ws[o * inputs + i])
                sum += term
                magnitude += abs(term)
            }
            #expect(abs(Double(ys[r * outputs + o]) - sum) <= 1e-5 * magnitude, "\(comment) row \(r) column \(o)",
                    sourceLocation: sourceLocation)
        }
    }
}

/// Expects `body` to throw `AttentionError.unsupportedDType` naming `argument`.
func expectUnsupportedDType(
    _ argument: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected unsupportedDType(\(argument)), nothing was thrown", sourceLocation: sourceLocation)
    } catch let AttentionError.unsupportedDType(name, _, _) {
        #expect(name == argument, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected unsupportedDType(\(argument)), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Under KernelTests: these run the kernels (attention, matrix multiply, attn_convert), which
/// must not overlap a test that switches the instruction set.
extension KernelTests {
    @Suite("Modules with half-precision weights")
    struct HalfPrecisionModulesTests {
        static let halfTypes: [Tensor.DType] = [.float16, .bfloat16]

        /// Linear against a double reference over the rounded weights, on the few-row path (rows ≤ 32,
        /// straight from B) and the packed path: |error| ≤ 1e-5 · (Σ|x w| + |b|), attn.h's bound.
        @Test(arguments: halfTypes, [3, 45])
        func linearAgainstTheDoubleReference(dtype: Tensor.DType, rows: Int) throws {
            var rng = SeededGenerator(seed: UInt64(rows))
            let linear = try Linear(inputSize: 37, outputSize: 19, using: &rng).convertingWeights(to: dtype)
            #expect(linear.weight.dtype == dtype && linear.bias?.dtype == .float32)
            let x = try Tensor(randomNormal: [rows, 37], using: &rng)
            let y = try linear(x)
            #expect(y.dtype == .float32 && y.shape == [rows, 19])
            expectWithinTheMatmulBound(y, input: x.scalars, of: linear, "\(dtype)")
            try expectHalfWeightsMatchWidened(linear.convertingWeights(to: .float32), dtype: dtype) { [try $0(x)] }
        }

        /// `products: .bfloat16` with a bf16 weight: the input rounded to bf16, then attn.h's bound
        /// against the double reference over the rounded input, on the few-row and packed paths and
        /// under every bf16 product mode this CPU has (VDPBF16PS and its model give the same bits);
        /// a weight of another type ignores it.
        @Test(arguments: [3, 45])
        func bfloat16ProductsRoundTheInput(rows: Int) throws {
            var rng = SeededGenerator(seed: 7 + UInt64(rows))
            let linear = try Linear(inputSize: 75, outputSize: 21, using: &rng).convertingWeights(to: .bfloat16)
            let x = try Tensor(randomNormal: [rows, 75], using: &rng)
            let rounded = try x.converted(to: .bfloat16).scalars
            #expect(rounded != x.scalars)
            let initial = AttentionBackend.bfloat16Products
            defer { try? AttentionBackend.setBFloat16Products(initial) }
            var outputs: [AttentionBackend.BFloat16Products: [Float]] = [:]
            for mode in AttentionBackend.BFloat16Products.allCases where AttentionBackend.isSupported(mode) {
                try AttentionBackend.setBFloat16Products(mode)
                let y = try linear(x, products: .bfloat16)
                outputs[mode] = y.scalars
                expectWithinTheMatmulBound(y, input: rounded, of: linear, "\(mode)")
                // matmul passes it on: its product is the float32 one of the rounded input.
                let product = try matmul(x, linear.weight, transposingB: true, products: .bfloat16)
                let reference = try matmul(Tensor(shape: x.shape, scalars: rounded), linear.weight, transposingB: true)
                expectClose(product, reference.scalars.map(Double.init), shape: [rows, 21], rtol: 1e-5, atol: 1e-5)
            }
            if let native = outputs[.native] { #expect(native == outputs[.emulated], "VDPBF16PS against its model") }
            let f16 = try linear.convertingWeights(to: .float32).convertingWeights(to: .float16)
            #expect(try f16(x, products: .bfloat16) == f16(x))
        }

        @Test(arguments: halfTypes)
        func publicMatmulTakesAHalfRightOperand(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 2)
            let a = try Tensor(randomNormal: [2, 5, 7], using: &rng)
            let b = try Tensor(randomNormal: [7, 6], dtype: dtype, using: &rng)
            let bt = try Tensor(randomNormal: [3, 1, 6, 7], dtype: dtype, using: &rng)
            let wide = try b.converted(to: .float32), wideT = try bt.converted(to: .float32)
            let product = try matmul(a, b), expected = try matmul(a, wide)
            #expect(product.dtype == .float32)
            expectClose(product, expected.scalars.map(Double.init), shape: [2, 5, 6])
            let productT = try matmul(a, bt, transposingB: true), expectedT = try matmul(a, wideT, transposingB: true)
            expectClose(productT, expectedT.scalars.map(Double.init), shape: [3, 2, 5, 6])
            expectUnsupportedDType("a") { _ = try matmul(b, a.sliced(0..<1)) }
        }

        @Test(arguments: halfTypes)
        func torchMultiheadAttention(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 3)
            let x = try Tensor(randomNormal: [5, 2, 8], using: &rng)  // (L, N, E)
            let memory = try Tensor(randomNormal: [7, 2, 6], using: &rng)
            let packed = try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, using: &rng)
            try expectHalfWeightsMatchWidened(packed, dtype: dtype, "packed") { module in
                let weighted = try module(query: x, key: x, value: x)
                let fused = try module(query: x, key: x, value: x, needWeights: false)
                return [weighted.output, weighted.weights!, fused.output]
            }
            let cross = try TorchMultiheadAttention(embedDim: 8, heads: 2, keyDim: 6, valueDim: 6, using: &rng)
            try expectHalfWeightsMatchWidened(cross, dtype: dtype, "kdim/vdim") { module in
                [try module(query: x, key: memory, value: memory, needWeights: false).output]
            }
            expectUnsupportedDType("query") { _ = try packed(query: x.converted(to: dtype), key: x, value: x) }
            expectUnsupportedDType("value") {
                _ = try cross(query: x, key: memory, value: memory.converted(to: dtype))
            }
            var halfBias = packed
            halfBias.inProjectionBias = try halfBias.inProjectionBias!.converted(to: dtype)
            expectUnsupportedDType("in_proj_bias") { _ = try halfBias(query: x, key: x, value: x) }
            var halfBiasKey = packed
            halfBiasKey.biasKey = try halfBiasKey.biasKey!.converted(to: dtype)
            expectUnsupportedDType("bias_k") { _ = try halfBiasKey(query: x, key: x, value: x) }
            expectUnsupportedDType("attentionMask") {
                _ = try packed(query: x, key: x, value: x, attentionMask: .additive(Tensor(zeros: [5, 5], dtype: dtype)))
            }
        }

        @Test(arguments: halfTypes, TransformerEncoderLayer.Convention.allCases)
        func transformerEncoder(dtype: Tensor.DType, convention: TransformerEncoderLayer.Convention) throws {
            var rng = SeededGenerator(seed: 4)
            let layer = try TransformerEncoderLayer(
                dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0, normFirst: true, convention: convention, using: &rng)
            let x = try Tensor(randomNormal: [6, 2, 8], using: &rng)
            try expectHalfWeightsMatchWidened(layer, dtype: dtype, "\(convention) layer") { [try $0(x)] }
            let encoder = try TransformerEncoder(layer: layer, count: 2, norm: LayerNorm(size: 8))
            try expectHalfWeightsMatchWidened(encoder, dtype: dtype, "\(convention) encoder") { [try $0(x)] }
            expectUnsupportedDType("source") { _ = try layer(x.converted(to: dtype)) }
            var halfNorm = layer
            halfNorm.norm1.weight = try halfNorm.norm1.weight!.converted(to: dtype)
            expectUnsupportedDType("norm1.weight") { _ = try halfNorm(x) }
        }

        @Test(arguments: halfTypes)
        func equinoxMultiheadAttention(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 5)
            let attention = try MultiheadAttention(
                heads: 2, querySize: 8, keySize: 6, valueSize: 5, qkSize: 4, voSize: 3, useQueryBias: true,
                useOutputBias: true, using: &rng)
            let q = try Tensor(randomNormal: [4, 8], using: &rng)
            let k = try Tensor(randomNormal: [7, 6], using: &rng), v = try Tensor(randomNormal: [7, 5], using: &rng)
            try expectHalfWeightsMatchWidened(attention, dtype: dtype, "cross") { [try $0(query: q, key: k, value: v)] }
            let selfAttention = try MultiheadAttention(heads: 2, querySize: 8, qkSize: 4, useKeyBias: true, using: &rng)
            let rope = try RotaryPositionalEmbedding(embeddingSize: 4)
            try expectHalfWeightsMatchWidened(selfAttention, dtype: dtype, "self, rotary") { [try $0(q, rotary: rope)] }
            expectUnsupportedDType("key") { _ = try attention(query: q, key: k.converted(to: dtype), value: v) }
            var mixed = selfAttention
            mixed.valueProjection.weight = try mixed.valueProjection.weight.converted(to: dtype)
            expectUnsupportedDType("value_proj.weight") { _ = try mixed(q) }
        }

        @Test(arguments: halfTypes)
        func flaxMultiHeadDotProductAttention(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 6)
            let attention = try MultiHeadDotProductAttention(
                heads: 2, inputFeatures: 8, keyFeatures: 6, normalizeQK: true, using: &rng)
            let q = try Tensor(randomNormal: [2, 4, 8], using: &rng), kv = try Tensor(randomNormal: [2, 5, 6], using: &rng)
            try expectHalfWeightsMatchWidened(attention, dtype: dtype) { [try $0(query: q, key: kv, value: kv)] }
            expectUnsupportedDType("query") { _ = try attention(query: q.converted(to: dtype), key: kv, value: kv) }
            var halfNorm = attention
            halfNorm.queryNorm!.weight = try halfNorm.queryNorm!.weight!.converted(to: dtype)
            expectUnsupportedDType("query_ln.scale") { _ = try halfNorm(query: q, key: kv, value: kv) }
        }

        @Test(arguments: halfTypes)
        func tutorialModulesAndSqueezeExcitation(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 7)
            let x = try Tensor(randomNormal: [2, 5, 6], using: &rng), context = try Tensor(randomNormal: [2, 3, 6], using: &rng)
            let plain = try SelfAttention(dIn: 6, dOutKQ: 4, dOutV: 3, using: &rng)
            try expectHalfWeightsMatchWidened(plain, dtype: dtype, "self") { [try $0(x), try $0.callWithWeights(x).weights!] }
            let causal = try CausalSelfAttention(dIn: 6, dOutKQ: 4, dOutV: 3, using: &rng)
            try expectHalfWeightsMatchWidened(causal, dtype: dtype, "causal") { [try $0(x)] }
            let cross = try CrossAttention(dIn: 6, dOutKQ: 4, dOutV: 3, using: &rng)
            try expectHalfWeightsMatchWidened(cross, dtype: dtype, "cross") { [try $0(x, context)] }
            let wrapper = try MultiHeadAttentionWrapper(dIn: 6, dOutKQ: 4, dOutV: 2, heads: 3, using: &rng)
            try expectHalfWeightsMatchWidened(wrapper, dtype: dtype, "wrapper") { [try $0(x)] }
            expectUnsupportedDType("x") { _ = try plain(x.converted(to: dtype)) }
            var mixed = wrapper
            mixed.heads[1].keyWeight = try mixed.heads[1].keyWeight.converted(to: dtype)
            expectUnsupportedDType("heads.1.W_key") { _ = try mixed(x) }
            expectUnsupportedDType("x2") { _ = try cross(x, context.converted(to: dtype)) }

            let squeeze = try SqueezeExcitation(inputChannels: 6, squeezeChannels: 3, using: &rng)
            let image = try Tensor(randomNormal: [2, 6, 3, 4], using: &rng)
            try expectHalfWeightsMatchWidened(squeeze, dtype: dtype, "squeeze-excitation") { [try $0(image)] }
            expectUnsupportedDType("input") { _ = try squeeze(image.converted(to: dtype)) }
            var halfBias = squeeze
            halfBias.fc2Bias = try halfBias.fc2Bias.converted(to: dtype)
            expectUnsupportedDType("fc2Bias") { _ = try halfBias(image) }
        }

        /// Decoding with a half-precision cache: the new keys and values are stored rounded, and each
        /// step's output is the attention (double reference) over the cache's rounded contents, through
        /// the module's own projections. A float32 cache gives what it always gave.
        @Test(arguments: halfTypes)
        func flaxDecodeWithAHalfCache(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 8)
            let attention = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, using: &rng)
            var cache = try attention.makeCache(batchShape: [2], maxLength: 7, dtype: dtype)
            var single = try attention.makeCache(batchShape: [2], maxLength: 7)
            var explicit = try attention.makeCache(batchShape: [2], maxLength: 7, dtype: .float32)
            #expect(cache.dtype == dtype && cache.key.dtype == dtype && single.dtype == .float32)
            var start = 0
            for n in [3, 1, 2] {
                let x = try Tensor(randomNormal: [2, n, 8], using: &rng)
                let y = try attention.decode(x, cache: &cache)
                #expect(y.dtype == .float32 && cache.index == start + n)
                #expect(try attention.decode(x, cache: &single) == attention.decode(x, cache: &explicit))

                let newKeys = try attention.keyProjection(x).converted(to: dtype)
                let newValues = try attention.valueProjection(x).converted(to: dtype)
                #expect(try cache.key.sliced(start..<(start + n), axis: 1).bitPatterns == newKeys.bitPatterns)
                #expect(try cache.value.sliced(start..<(start + n), axis: 1).bitPatterns == newValues.bitPatterns)
                #expect(try cache.key.sliced((start + n)..<7, axis: 1).bitPatterns!.allSatisfy { $0 == 0 })

                let heads = [0, 2, 1, 3]
                let query = try attention.queryProjection(x).permuted(heads)
                let keys = try cache.key.sliced(0..<(start + n), axis: 1).permuted(heads)
                let values = try cache.value.sliced(0..<(start + n), axis: 1).permuted(heads)
                let reference = referenceAttention(query: query, key: keys, value: values, mask: .causal(.bottomRight))
                let attended = try Tensor(shape: [2, 2, n, 4], scalars: reference.output.map(Float.init)).permuted(heads)
                let expected = try attention.outputProjection(attended)
                expectClose(y, expected.scalars.map(Double.init), shape: [2, n, 8], rtol: 1e-5, atol: 1e-5, "step of \(n)")
                start += n
            }
            cache.reset()
            #expect(cache.index == 0 && cache.dtype == dtype && cache.key.bitPatterns!.allSatisfy { $0 == 0 })
            let restored = try KeyValueCache(key: cache.key, value: cache.value, index: 0)
            #expect(restored.dtype == dtype)
            #expect(throws: AttentionError.self) {
                try KeyValueCache(key: cache.key, value: cache.value.converted(to: .float32), index: 0)
            }
        }
    }
}
