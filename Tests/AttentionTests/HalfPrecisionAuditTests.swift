import Foundation
import Testing
@testable import Attention

// An audit of the half-precision API from outside: every public call that takes or holds a tensor
// gets a float16 and a bfloat16 tensor in each tensor position, one position at a time (inputs,
// weights, biases, norm scales, masks made from tensors, caches, and module parameters written
// directly through their public `var`s, which no initialiser checks). Each call must either give
// the float32 result of the widened values or throw `unsupportedDType` naming that position; a
// trap would end the test process.

/// One tensor position of an audited call: the argument's or parameter's name, and its value.
typealias AuditedTensor = (name: String, tensor: Tensor)

/// Whether an error's `argument` names the position `name`: the same words once dots, underscores
/// and case are ignored, either one possibly qualified by a prefix (`"norm1.weight"` for a
/// parameter `"weight"`, `"fc2Bias"` for `"fc2.bias"`).
func argument(_ argument: String, names name: String) -> Bool {
    func plain(_ s: String) -> String { s.lowercased().filter { $0 != "." && $0 != "_" } }
    let (a, n) = (plain(argument), plain(name))
    return a == n || a.hasSuffix(n) || n.hasSuffix(a)
}

/// For each position and each half-precision dtype, runs `call` with that one tensor converted,
/// and expects either `unsupportedDType` of that dtype naming the position (or, for a position in
/// `refusedAs`, naming the sibling that must share its dtype, with the half dtype in the reason:
/// stacked weights, concatenated tensors), or outputs equal to those of `call` with the converted
/// tensor widened back to float32 (same values, so the same math up to float32 rounding; an output
/// in half precision within attn.h's tolerance of its dtype). Any other error is a failure.
///
/// - Returns: for each position and dtype, `"name dtype: ok"` or `"name dtype: refused"`, so a
///   test can also pin which positions take half precision.
@discardableResult
func auditHalfPositions(
    _ label: String, _ positions: [AuditedTensor], refusedAs: [String: String] = [:],
    sourceLocation: SourceLocation = #_sourceLocation, _ call: ([Tensor]) throws -> [Tensor]
) throws -> [String: Bool] {
    var accepted: [String: Bool] = [:]
    for (index, position) in positions.enumerated() {
        for dtype in [Tensor.DType.float16, .bfloat16] {
            let half = try position.tensor.converted(to: dtype)
            var halfArguments = positions.map(\.tensor), widenedArguments = halfArguments
            halfArguments[index] = half
            widenedArguments[index] = try half.converted(to: .float32)
            let where_ = Comment(rawValue: "\(label): \(position.name) in \(dtype)")
            let outputs: [Tensor]
            do {
                outputs = try call(halfArguments)
            } catch let AttentionError.unsupportedDType(name, refused, reason) {
                if let sibling = refusedAs[position.name] {
                    // A mixed-dtype refusal names the tensor that differs from the first one.
                    #expect(argument(name, names: sibling) && reason.contains("\(dtype)"),
                            "named \(name): \(reason). \(where_)", sourceLocation: sourceLocation)
                } else {
                    #expect(refused == dtype && argument(name, names: position.name),
                            "named \(name) \(refused). \(where_)", sourceLocation: sourceLocation)
                }
                accepted["\(position.name) \(dtype)"] = false
                continue
            } catch {
                Issue.record("\(where_): \(error)", sourceLocation: sourceLocation)
                continue
            }
            accepted["\(position.name) \(dtype)"] = true
            let references = try call(widenedArguments)
            #expect(outputs.count == references.count, where_, sourceLocation: sourceLocation)
            for (output, reference) in zip(outputs, references) {
                let tolerance = output.dtype == .float32 ? 1e-4 : attentionTolerance(output.dtype)
                expectClose(
                    output, reference.scalars.map(Double.init), shape: reference.shape, rtol: tolerance, atol: tolerance,
                    where_, sourceLocation: sourceLocation)
            }
        }
    }
    return accepted
}

/// ``auditHalfPositions(_:_:refusedAs:sourceLocation:_:)`` over every parameter of `module`
/// (written through its key path, as a user assigning the public property would) followed by
/// `inputs`; `forward` gets the module and the inputs.
@discardableResult
func auditModule<Module: ParameterizedModule>(
    _ label: String, _ module: Module, inputs: [AuditedTensor] = [], refusedAs: [String: String] = [:],
    sourceLocation: SourceLocation = #_sourceLocation, _ forward: (Module, [Tensor]) throws -> [Tensor]
) throws -> [String: Bool] {
    let paths = module.parameterPaths
    #expect(!paths.isEmpty || !inputs.isEmpty, sourceLocation: sourceLocation)
    let positions = paths.map { (name: $0.name, tensor: module[keyPath: $0.path]) } + inputs
    return try auditHalfPositions(label, positions, refusedAs: refusedAs, sourceLocation: sourceLocation) { tensors in
        var copy = module
        for (entry, tensor) in zip(paths, tensors) { copy[keyPath: entry.path] = tensor }
        return try forward(copy, Array(tensors.dropFirst(paths.count)))
    }
}

/// Random float32 tensors for the audits.
func auditTensor(_ shape: [Int], _ rng: inout SeededGenerator) throws -> Tensor {
    try Tensor(randomNormal: shape, using: &rng)
}

/// Under KernelTests: these run the kernels, which must not overlap a test that switches the
/// instruction set.
extension KernelTests {
    @Suite("Half-precision audit: every public tensor position")
    struct HalfPrecisionAuditTests {
        // MARK: Tensor operations

        @Test func tensorOperations() throws {
            var rng = SeededGenerator(seed: 1)
            let x = try auditTensor([2, 3, 4], &rng), y = try auditTensor([3, 1], &rng)
            let accepted = try auditHalfPositions("element-wise", [("self", x), ("other", try auditTensor([3, 4], &rng))]) { t in
                [try t[0].adding(t[1]), try t[0].multiplying(t[1])]
            }
            #expect(accepted.values.allSatisfy { !$0 })
            try auditHalfPositions("scaled, softmax", [("self", x)]) { t in
                [try t[0].scaled(by: 2), try t[0].softmax(), try t[0].softmax(alongAxis: 0, maskedRows: .zero)]
            }
            // Layout operations keep the dtype.
            let layout = try auditHalfPositions("layout", [("self", x)]) { t in
                [try t[0].transposed(), try t[0].permuted([2, 0, 1]), try t[0].sliced(1..<3, axis: 1),
                 try t[0].reshaped([6, -1]), try t[0].sliced(0..<0)]
            }
            #expect(layout.values.allSatisfy { $0 })
            let joined = try auditHalfPositions(
                "concatenated", [("tensors[0]", x), ("tensors[1]", x)], refusedAs: ["tensors[0]": "tensors[1]"]
            ) { t in
                [try Tensor.concatenated(t, axis: 1)]
            }
            #expect(joined == ["tensors[0] float16": false, "tensors[0] bfloat16": false,
                               "tensors[1] float16": false, "tensors[1] bfloat16": false])
            try auditHalfPositions("matmul", [("a", try auditTensor([2, 5, 3], &rng)), ("b", y.sliced(0..<3).reshaped([3, 1]))]) { t in
                [try matmul(t[0], t[1]), try matmul(t[0], t[0], transposingA: true),
                 try matmul(t[0], t[0], transposingB: true)]
            }
            try auditHalfPositions("matmul transposingB", [("a", try auditTensor([4, 3], &rng)), ("b", try auditTensor([2, 5, 3], &rng))]) { t in
                [try matmul(t[0], t[1], transposingB: true)]
            }
        }

        @Test func layers() throws {
            var rng = SeededGenerator(seed: 2)
            let x = try auditTensor([3, 5], &rng)
            for activation in Activation.allCases {
                try auditHalfPositions("\(activation)", [("input", x)]) { t in [try activation(t[0]), try activation.gated(t[0])] }
            }
            var norm = try LayerNorm(size: 5)
            norm.weight = try auditTensor([5], &rng)
            norm.bias = try auditTensor([5], &rng)
            try auditModule("LayerNorm", norm, inputs: [("input", x)]) { m, t in [try m(t[0])] }
            let linear = try Linear(inputSize: 5, outputSize: 4, using: &rng)
            try auditModule("Linear", linear, inputs: [("input", x)]) { m, t in [try m(t[0])] }
            try auditModule("Linear adding", linear, inputs: [("input", x), ("residual", try auditTensor([3, 4], &rng))]) { m, t in
                [try m(t[0], adding: t[1])]   // (bf16 products round the input by design: tested on their own)
            }
            var norm2 = try RMSNorm(weight: auditTensor([5], &rng), epsilon: 1e-6)
            norm2.epsilon = 1e-5
            try auditModule("RMSNorm", norm2, inputs: [("input", x)]) { m, t in [try m(t[0])] }
            // Dropout rounds each kept element back to the input's dtype: the same values.
            let dropout = Dropout(probability: 0.25, seed: 3)
            try auditHalfPositions("Dropout", [("input", x)]) { t in [try dropout(t[0]), try dropout(t[0], inference: true)] }
            let rope = try RotaryPositionalEmbedding(embeddingSize: 4)
            let heads = try auditTensor([2, 3, 2, 4], &rng)
            try auditHalfPositions("rotary", [("x", heads)]) { t in
                var rotated = t[0]
                try rope.rotate(&rotated, positionOffset: 1)
                return [try rope(t[0]), try rope(t[0], positionOffset: 2), rotated]
            }
            try auditHalfPositions("rotateHeads", [("heads", heads)]) { t in
                var a = t[0], b = t[0]
                try rope.rotateHeads(&a)
                try rope.rotateHeads(&b, layout: .heads, positionOffset: 3)
                return [a, b]
            }
        }

        // MARK: Attention functions

        @Test func scaledDotProductAttentionEveryPosition() throws {
            var rng = SeededGenerator(seed: 3)
            let q = try auditTensor([2, 4, 5, 8], &rng), k = try auditTensor([2, 2, 7, 8], &rng)
            let v = try auditTensor([2, 2, 7, 6], &rng), bias = try auditTensor([1, 4, 5, 7], &rng)
            let accepted = try auditHalfPositions("sdpa", [("query", q), ("key", k), ("value", v), ("mask.bias", bias)]) { t in
                let mask = AttentionMask(causal: .bottomRight, bias: t[3])
                let lse = try scaledDotProductAttentionWithLogSumExp(query: t[0], key: t[1], value: t[2], mask: mask)
                return [
                    try scaledDotProductAttention(query: t[0], key: t[1], value: t[2], mask: mask),
                    try scaledDotProductAttention(
                        query: t[0], key: t[1], value: t[2], mask: mask, algorithm: .unfused, outputDType: .float32),
                    lse.output, lse.logSumExp,
                    // Every other mask kind, dropout, the masked-row policies, one thread.
                    try scaledDotProductAttention(
                        query: t[0], key: t[1], value: t[2],
                        mask: AttentionMask(
                            causal: .topLeft, window: .init(left: 2, right: 1), keyLengths: [7, 3],
                            booleanMask: try BooleanMask(shape: [5, 7]) { ($0[0] + $0[1]) % 3 != 0 }, bias: t[3]),
                        dropout: Dropout(probability: 0.3, seed: 9), maskedRows: .meanOfValues, threads: 1),
                    try scaledDotProductAttention(
                        query: t[0], key: t[1], value: t[2], mask: AttentionMask(keyLengths: [0, 7]), maskedRows: .nan,
                        algorithm: .unfused),
                ]
            }
            #expect(accepted["mask.bias float16"] == false && accepted["query bfloat16"] == true)
            try auditHalfPositions("packed sdpa", [("packedQuery", try auditTensor([9, 2, 4], &rng)),
                                                   ("key", try auditTensor([9, 1, 4], &rng)),
                                                   ("value", try auditTensor([9, 1, 3], &rng))]) { t in
                [try scaledDotProductAttention(packedQuery: t[0], key: t[1], value: t[2], sequenceLengths: [4, 0, 5], causal: .topLeft)]
            }
            let fq = try auditTensor([2, 5, 2, 4], &rng), fk = try auditTensor([2, 6, 2, 4], &rng)
            let fv = try auditTensor([2, 6, 2, 3], &rng), fb = try auditTensor([2, 1, 5, 6], &rng)
            try auditHalfPositions("flax dotProductAttention", [("query", fq), ("key", fk), ("value", fv), ("bias", fb)]) { t in
                [try dotProductAttention(query: t[0], key: t[1], value: t[2], bias: t[3])]
            }
            try auditHalfPositions("flax dotProductAttentionWeights", [("query", fq), ("key", fk), ("bias", fb)]) { t in
                [try dotProductAttentionWeights(query: t[0], key: t[1], bias: t[2])]
            }
        }

        /// Masks made from tensors read the values (nonzero attends; an additive torch mask is a
        /// bias, so float32 only).
        @Test func masksFromTensors() throws {
            let values = try Tensor(shape: [2, 3], scalars: [0, 1, -0.0, 1e-7, .nan, -2])
            for dtype in [Tensor.DType.float16, .bfloat16] {
                let mask = BooleanMask(try values.converted(to: dtype))
                let expected = try values.converted(to: dtype).scalars.map { $0 != 0 }
                #expect(mask.values == expected && mask.shape == [2, 3])
                let causal = try TorchMask.squareSubsequent(4)
                guard case let .additive(tensor) = causal else { Issue.record("not additive"); continue }
                #expect(TorchMask.additive(try tensor.converted(to: dtype)).isCausal(length: 4))
            }
        }

        // MARK: Modules

        @Test func torchModules() throws {
            var rng = SeededGenerator(seed: 4)
            let x = try auditTensor([5, 2, 8], &rng), memory = try auditTensor([7, 2, 6], &rng)
            let packed = try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, addZeroAttention: true, using: &rng)
            let attnMask = try auditTensor([5, 7], &rng), paddingMask = try auditTensor([2, 5], &rng)
            try auditModule("torch MHA packed", packed, inputs: [("query", x), ("key", x), ("value", x),
                                                               ("attentionMask", attnMask), ("keyPaddingMask", paddingMask)]) { m, t in
                let weighted = try m(query: t[0], key: t[1], value: t[2], keyPaddingMask: .additive(t[4]),
                                     attentionMask: .additive(t[3].sliced(0..<5, axis: 1)), averageAttentionWeights: false)
                let fused = try m(query: t[0], key: t[1], value: t[2], needWeights: false)
                return [weighted.output, weighted.weights!, fused.output]
            }
            let cross = try TorchMultiheadAttention(embedDim: 8, heads: 2, keyDim: 6, valueDim: 6, using: &rng)
            try auditModule("torch MHA kdim", cross, inputs: [("query", x), ("key", memory), ("value", memory)]) { m, t in
                let result = try m(.init(query: t[0], key: t[1], value: t[2], attentionMask: .additive(attnMask)))
                return [result.output, result.weights!]
            }
            // The causal kernel path: isCausal with a causal mask and no weights.
            let causalMask = try Tensor(shape: [5, 5], scalars: (0..<25).map { $0 % 5 > $0 / 5 ? -.infinity : 0 })
            try auditModule("torch MHA causal", packed, inputs: [("query", x), ("attentionMask", causalMask)]) { m, t in
                [try m(query: t[0], key: t[0], value: t[0], needWeights: false, attentionMask: .additive(t[1]), isCausal: true).output]
            }
            let masks: [AuditedTensor] = [("mask", try auditTensor([5, 5], &rng)), ("keyPaddingMask", try auditTensor([2, 5], &rng))]
            for convention in TransformerEncoderLayer.Convention.allCases {
                let layer = try TransformerEncoderLayer(
                    dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0, convention: convention, using: &rng)
                try auditModule("\(convention) encoder layer", layer, inputs: [("source", x)] + masks) { m, t in
                    [try m(t[0], mask: .additive(t[1]), keyPaddingMask: .additive(t[2])), try m(t[0])]
                }
                let encoder = try TransformerEncoder(layer: layer, count: 2, norm: LayerNorm(size: 8))
                try auditModule("\(convention) encoder", encoder, inputs: [("source", x)] + masks) { m, t in
                    [try m(t[0], mask: .additive(t[1]), keyPaddingMask: .additive(t[2])), try m(t[0]),
                     try m(t[0], mask: .additive(causalMask), isCausal: true)]
                }
            }
        }

        /// noxton's separate projections are slices of one packed weight: one slice written in
        /// half precision through its key path (or from a mixed checkpoint) never rounds the other
        /// two (it rounded them to the slice's dtype), and all three in one dtype keep it.
        /// PyTorch's decoder layer, decoder and Transformer: every parameter, input and mask.
        @Test func torchDecoderModules() throws {
            var rng = SeededGenerator(seed: 14)
            let target = try auditTensor([4, 2, 8], &rng), memory = try auditTensor([5, 2, 8], &rng)
            let masks: [AuditedTensor] = [
                ("targetMask", try auditTensor([4, 4], &rng)), ("memoryMask", try auditTensor([4, 5], &rng)),
                ("targetKeyPaddingMask", try auditTensor([2, 4], &rng)), ("memoryKeyPaddingMask", try auditTensor([2, 5], &rng)),
            ]
            let layer = try TransformerDecoderLayer(dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0, using: &rng)
            try auditModule("decoder layer", layer, inputs: [("target", target), ("memory", memory)] + masks) { m, t in
                [try m(t[0], memory: t[1], targetMask: .additive(t[2]), memoryMask: .additive(t[3]),
                       targetKeyPaddingMask: .additive(t[4]), memoryKeyPaddingMask: .additive(t[5])),
                 try m(t[0], memory: t[1])]
            }
            let decoder = try TransformerDecoder(layer: layer, count: 2, norm: LayerNorm(size: 8))
            try auditModule("decoder", decoder, inputs: [("target", target), ("memory", memory)]) { m, t in
                [try m(t[0], memory: t[1])]
            }
            let model = try Transformer(
                dModel: 8, heads: 2, encoderLayerCount: 1, decoderLayerCount: 1, feedForwardSize: 12, dropout: 0, using: &rng)
            try auditModule("transformer", model, inputs: [("source", memory), ("target", target)]) { m, t in
                [try m(t[0], target: t[1])]
            }
        }

        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func noxtonSlicesOfOnePackedWeight(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 13)
            let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 12, convention: .noxton, using: &rng)
            let paths = Dictionary(uniqueKeysWithValues: layer.parameterPaths.map { ($0.name, $0.path) })
            for kind in ["weight", "bias"] {
                let names = ["query_proj", "key_proj", "value_proj"].map { "self_attn.\($0).\(kind)" }
                let before = names.map { layer[keyPath: paths[$0]!] }
                var mixed = layer
                mixed[keyPath: paths[names[2]]!] = try before[2].converted(to: dtype)
                let after = names.map { mixed[keyPath: paths[$0]!] }
                #expect(after[0] == before[0] && after[1] == before[1], "\(kind)")
                #expect(after[2] == (try before[2].converted(to: dtype).converted(to: .float32)), "\(kind)")
                // The same through loading a checkpoint with one half-precision slice.
                var loaded = layer
                var checkpoint = layer.parameterDictionary()
                checkpoint[names[0]] = try before[0].converted(to: dtype)
                if kind == "weight" {
                    try loaded.loadParameters(from: checkpoint, precision: .asStored)
                    #expect(loaded[keyPath: paths[names[1]]!] == before[1] && loaded[keyPath: paths[names[2]]!] == before[2])
                } else {
                    expectUnsupportedDType(names[0]) { try loaded.loadParameters(from: checkpoint, precision: .asStored) }
                }
                // All three in one dtype: the packed tensor keeps it.
                var half = layer
                for (name, tensor) in zip(names, before) { half[keyPath: paths[name]!] = try tensor.converted(to: dtype) }
                #expect(names.allSatisfy { half[keyPath: paths[$0]!].dtype == dtype })
            }
            let converted = try layer.convertingWeights(to: dtype)
            #expect(converted.selfAttention.inProjectionWeight?.dtype == dtype)
        }

        @Test func equinoxModule() throws {
            var rng = SeededGenerator(seed: 5)
            let cross = try MultiheadAttention(
                heads: 2, querySize: 8, keySize: 6, valueSize: 5, qkSize: 4, voSize: 3, useQueryBias: true,
                useKeyBias: true, useValueBias: true, useOutputBias: true, using: &rng)
            let q = try auditTensor([2, 4, 8], &rng), k = try auditTensor([2, 7, 6], &rng), v = try auditTensor([2, 7, 5], &rng)
            let rope = try RotaryPositionalEmbedding(embeddingSize: 4)
            try auditModule("equinox cross", cross, inputs: [("query", q), ("key", k), ("value", v)]) { m, t in
                let result = try m.callWithWeights(query: t[0], key: t[1], value: t[2], rotary: rope)
                return [result.output, result.weights!]
            }
            let selfAttention = try MultiheadAttention(heads: 2, querySize: 8, qkSize: 4, useKeyBias: true, using: &rng)
            try auditModule(
                "equinox self", selfAttention, inputs: [("query", q)], refusedAs: ["query_proj.weight": "key_proj.weight"]
            ) { m, t in
                [try m(t[0], rotary: rope), try m.callWithWeights(query: t[0], key: t[0], value: t[0]).weights!]
            }
        }

        /// `processHeads` may hand back heads of any dtype: the kernel reads them, and the weights
        /// (`callWithWeights`) take a half-precision key but need a float32 query.
        @Test(arguments: ["query", "key", "value"])
        func equinoxProcessHeadsInHalfPrecision(head: String) throws {
            var rng = SeededGenerator(seed: 6)
            let attention = try MultiheadAttention(heads: 2, querySize: 8, qkSize: 4, using: &rng)
            let x = try auditTensor([5, 8], &rng)
            let path: WritableKeyPath<AttentionHeads, Tensor> = head == "query" ? \.query : head == "key" ? \.key : \.value
            for dtype in [Tensor.DType.float16, .bfloat16] {
                for (selfAttention, returningWeights) in [(true, false), (false, false), (true, true), (false, true)] {
                    // Cross-attention with the same tensors still projects separately.
                    let (kv, other) = selfAttention ? (x, x) : (try x.scaled(by: 1), try x.scaled(by: 1))
                    func run(_ convert: Tensor.DType) throws -> AttentionResult {
                        try attention(.init(query: x, key: kv, value: other, processHeads: { heads in
                            heads[keyPath: path] = try heads[keyPath: path].converted(to: dtype).converted(to: convert)
                        }, returningWeights: returningWeights))
                    }
                    let label = Comment(rawValue: "\(head) \(dtype) self \(selfAttention) weights \(returningWeights)")
                    do {
                        let half = try run(dtype), widened = try run(.float32)
                        expectClose(half.output, widened.output.scalars.map(Double.init), shape: widened.output.shape,
                                    rtol: 1e-4, atol: 1e-4, label)
                        if let weights = half.weights {
                            expectClose(weights, widened.weights!.scalars.map(Double.init), shape: weights.shape,
                                        rtol: 1e-4, atol: 1e-4, label)
                        }
                    } catch let AttentionError.unsupportedDType(name, _, _) {
                        #expect(returningWeights && head == "query" && name == "query", label)
                    }
                }
            }
        }

        @Test func flaxModule() throws {
            var rng = SeededGenerator(seed: 7)
            let attention = try MultiHeadDotProductAttention(
                heads: 2, inputFeatures: 8, keyFeatures: 6, normalizeQK: true, using: &rng)
            let q = try auditTensor([2, 4, 8], &rng), kv = try auditTensor([2, 5, 6], &rng)
            try auditModule("flax", attention, inputs: [("query", q), ("key", kv), ("value", kv)]) { m, t in
                let result = try m.callWithWeights(query: t[0], key: t[1], value: t[2])
                return [result.output, result.weights!, try m(.init(query: t[0], key: t[1], value: t[2])).output]
            }
            let selfAttention = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, using: &rng)
            try auditModule("flax decode", selfAttention, inputs: [("query", q)]) { m, t in
                var cache = try m.makeCache(batchShape: [2], maxLength: 6)
                var halfCache = try m.makeCache(batchShape: [2], maxLength: 6, dtype: .bfloat16)
                return [try m.decode(t[0], cache: &cache), cache.key, cache.value,
                        try m.decode(t[0], cache: &halfCache).converted(to: .float32)]
            }
        }

        /// A custom attention function may return any dtype: a half-precision result is refused
        /// by the output projection, naming the function's result.
        @Test func flaxCustomAttentionFunctionAndArguments() throws {
            var rng = SeededGenerator(seed: 8)
            let q = try auditTensor([2, 4, 2, 4], &rng), k = try auditTensor([2, 5, 2, 4], &rng)
            let v = try auditTensor([2, 5, 2, 3], &rng), bias = try auditTensor([2, 2, 4, 5], &rng)
            for function in [MultiHeadDotProductAttention.AttentionFunction.fused, .unfused] {
                try auditHalfPositions("attention function", [("query", q), ("key", k), ("value", v), ("mask.bias", bias)]) { t in
                    [try function(.init(query: t[0], key: t[1], value: t[2], mask: AttentionMask(bias: t[3])))]
                }
            }
            for dtype in [Tensor.DType.float16, .bfloat16] {
                let halfResult = MultiHeadDotProductAttention.AttentionFunction { arguments in
                    try dotProductAttention(query: arguments.query, key: arguments.key, value: arguments.value)
                        .converted(to: dtype)
                }
                var attention = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, attentionFunction: halfResult, using: &rng)
                let x = try auditTensor([2, 3, 8], &rng)
                do {
                    _ = try attention(query: x)
                    Issue.record("a \(dtype) attention result was projected")
                } catch let AttentionError.unsupportedDType(name, found, _) {
                    #expect(name == "attentionFunction" && found == dtype)
                }
                // Decoding hands the custom function the cache in its dtype.
                attention.attentionFunction = MultiHeadDotProductAttention.AttentionFunction { arguments in
                    #expect(arguments.key.dtype == dtype && arguments.value.dtype == dtype)
                    return try dotProductAttention(
                        query: arguments.query, key: arguments.key, value: arguments.value,
                        mask: arguments.mask.booleanMask)
                }
                var cache = try attention.makeCache(batchShape: [2], maxLength: 4, dtype: dtype)
                let step = try attention.decode(x, cache: &cache)
                #expect(step.dtype == .float32 && cache.index == 3)
            }
        }

        /// A half-precision cache, built directly or from a checkpoint's tensors: full → a typed
        /// error and the cache unchanged; key and value of different dtypes → refused.
        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func keyValueCacheEdges(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 9)
            let attention = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, using: &rng)
            let x = try auditTensor([1, 2, 8], &rng)
            var cache = try attention.makeCache(batchShape: [1], maxLength: 3, dtype: dtype)
            _ = try attention.decode(x, cache: &cache)
            let before = cache
            #expect(expectAttentionError { _ = try attention.decode(x, cache: &cache) }?.argument == "cache")
            #expect(cache.index == before.index && cache.key == before.key && cache.value == before.value)
            _ = try attention.decode(x.sliced(0..<1, axis: 1), cache: &cache)
            #expect(cache.remaining == 0)
            #expect(expectAttentionError { _ = try attention.decode(x.sliced(0..<1, axis: 1), cache: &cache) }?.argument == "cache")

            let key = try Tensor(zeros: [1, 3, 2, 4], dtype: dtype)
            expectUnsupportedDType("value") { _ = try KeyValueCache(key: key, value: Tensor(zeros: [1, 3, 2, 4]), index: 0) }
            var rebuilt = try KeyValueCache(key: cache.key, value: cache.value, index: 3)
            #expect(rebuilt.dtype == dtype)
            rebuilt.reset()
            #expect(rebuilt.key == (try Tensor(zeros: [1, 3, 2, 4], dtype: dtype)) && rebuilt.index == 0)
            #expect(cache.key != rebuilt.key)  // reset copied, the original keeps its entries
            let step = try attention.decode(x, cache: &rebuilt)
            #expect(step.dtype == .float32 && rebuilt.index == 2)
            // A cache made from tensors another cache holds writes into its own copy.
            let (keys, values) = (rebuilt.key.bitPatterns, rebuilt.value.bitPatterns)
            var sharing = try KeyValueCache(key: rebuilt.key, value: rebuilt.value, index: 2)
            _ = try attention.decode(x.sliced(0..<1, axis: 1), cache: &sharing)
            #expect(rebuilt.key.bitPatterns == keys && rebuilt.value.bitPatterns == values)
            #expect(sharing.key.bitPatterns != keys)
        }

        /// Decoding n = 1...30 new positions into a half-precision cache (the decode kernel reads
        /// it in place) with a NaN in one input position: NaN exactly where a float32 cache gives
        /// NaN, and the other outputs within the cache's rounding.
        @Test(arguments: [Tensor.DType.float16, .bfloat16], 1...30)
        func nanInAHalfCacheDecode(dtype: Tensor.DType, count: Int) throws {
            var rng = SeededGenerator(seed: UInt64(100 + count))
            let attention = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, using: &rng)
            let prompt = try auditTensor([1, 2, 8], &rng)
            var x = try auditTensor([1, count, 8], &rng)
            x[0, count / 2, 3] = .nan
            var outputs: [Tensor] = []
            for cacheType in [Tensor.DType.float32, dtype] {
                var cache = try attention.makeCache(batchShape: [1], maxLength: count + 3, dtype: cacheType)
                _ = try attention.decode(prompt, cache: &cache)
                outputs.append(try attention.decode(x, cache: &cache))
                #expect(cache.index == count + 2)
            }
            let (single, half) = (outputs[0].scalars, outputs[1].scalars)
            #expect(zip(single, half).allSatisfy { $0.isNaN == $1.isNaN })
            #expect(single.contains { $0.isNaN })
            let scale = single.filter(\.isFinite).map(abs).max() ?? 1
            let worst = zip(single, half).filter { !$0.0.isNaN }.map { abs($0.0 - $0.1) }.max() ?? 0
            #expect(worst <= 0.05 * max(1, scale), "largest |diff| \(worst)")
        }

        @Test func tutorialAndVisionModules() throws {
            var rng = SeededGenerator(seed: 10)
            let x = try auditTensor([2, 5, 6], &rng), context = try auditTensor([2, 3, 6], &rng)
            let plain = try SelfAttention(dIn: 6, dOutKQ: 4, dOutV: 3, using: &rng)
            let stacked = ["W_query": "W_key"]
            try auditModule("tutorial self", plain, inputs: [("x", x)], refusedAs: stacked) { m, t in
                [try m(t[0]), try m.callWithWeights(t[0]).weights!, try m(.init(x: t[0], returningWeights: true)).output]
            }
            let causal = try CausalSelfAttention(dIn: 6, dOutKQ: 4, dOutV: 3, using: &rng)
            try auditModule("tutorial causal", causal, inputs: [("x", x)], refusedAs: stacked) { m, t in [try m(t[0]), try m.callWithWeights(t[0]).weights!] }
            let cross = try CrossAttention(dIn: 6, dOutKQ: 4, dOutV: 3, using: &rng)
            try auditModule("tutorial cross", cross, inputs: [("x1", x), ("x2", context)], refusedAs: stacked) { m, t in
                [try m(t[0], t[1]), try m.callWithWeights(t[0], t[1]).weights!,
                 try m(.init(x: t[0], context: t[1])).output]
            }
            let wrapper = try MultiHeadAttentionWrapper(dIn: 6, dOutKQ: 4, dOutV: 2, heads: 3, using: &rng)
            try auditModule("tutorial wrapper", wrapper, inputs: [("x", x)], refusedAs: ["heads.0.W_query": "heads.0.W_key"]) { m, t in
                [try m(t[0]), try m.callWithWeights(t[0]).weights!]
            }
            let squeeze = try SqueezeExcitation(inputChannels: 6, squeezeChannels: 3, using: &rng)
            try auditModule("squeeze-excitation", squeeze, inputs: [("input", try auditTensor([2, 6, 3, 4], &rng))]) { m, t in
                [try m(t[0]), try m(t[0].sliced(0..<1).reshaped([6, 3, 4]), activation: .silu)]
            }
            // An empty image is its own result, but only in float32, and the biases are checked
            // whatever the input's size (they were not before the empty case returned).
            let empty = try auditModule(
                "squeeze-excitation, empty", squeeze, inputs: [("input", try Tensor(zeros: [0, 6, 3, 4]))]
            ) { m, t in [try m(t[0])] }
            #expect(empty.filter { !$0.value }.keys.sorted() == [
                "fc1.bias bfloat16", "fc1.bias float16", "fc2.bias bfloat16", "fc2.bias float16",
                "input bfloat16", "input float16",
            ])
        }
    }
}

/// The 16-bit patterns of `half_written_bytes.safetensors` (see generate_half_written_bytes.py):
/// special values, then `(i · 40503 + 12345) mod 2¹⁶`.
let writtenBitPatterns: [UInt16] = [
    0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
    0x7C01, 0x7E00, 0xFE55, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0x7F80, 0xFF80, 0x7F81, 0x7FC0,
    0xFFAA, 0xBF80,
] + (0..<40).map { UInt16(($0 * 40503 + 12345) % 65536) }

/// A tensor of `shape` with `specials` written at the start of its elements (widened to float32
/// from `dtype`, so the half-precision and float32 problems hold the same values).
func tensor(
    _ shape: [Int], dtype: Tensor.DType, specials: [Float], _ rng: inout SeededGenerator
) throws -> (half: Tensor, widened: Tensor) {
    var half = try Tensor(randomNormal: shape, dtype: dtype, using: &rng)
    half.withUnsafeMutableBufferPointer { values in
        for (index, special) in specials.enumerated() { values[index] = special }
    }
    return (half, try half.converted(to: .float32))
}

extension KernelTests {
    @Suite("Half-precision audit: edges of the dtype API")
    struct HalfPrecisionEdgeTests {
        static let halfTypes: [Tensor.DType] = [.float16, .bfloat16]

        @Test func bitPatternsNeedAHalfDType() {
            #expect(expectAttentionError { _ = try Tensor(shape: [2], bitPatterns: [1, 2], dtype: .float32) }?.argument == "dtype")
            #expect(expectAttentionError { _ = try Tensor(shape: [3], bitPatterns: [1, 2], dtype: .float16) }?.argument == "bitPatterns")
            #expect(expectAttentionError { _ = try Tensor(shape: [-1], bitPatterns: [], dtype: .bfloat16) }?.argument == "shape")
            #expect(expectAttentionError { _ = try Tensor(shape: [Int.max, 2], bitPatterns: [], dtype: .bfloat16) }?.argument == "shape")
        }

        /// Sizes whose element count fits but whose bytes do not: a typed error, never a trap.
        @Test(arguments: Tensor.DType.allCases)
        func byteCountOverflow(dtype: Tensor.DType) {
            for shape in [[1 << 62], [Int.max / 2 + 1], [1 << 31, 1 << 31]] {
                #expect(throws: AttentionError.self) { _ = try Tensor(zeros: shape, dtype: dtype) }
                #expect(throws: AttentionError.self) { _ = try Tensor(zeros: [1], dtype: dtype).reshaped(shape) }
            }
        }

        /// Empty tensors, some with dimensions whose product would overflow if they were not
        /// empty, through every operation that takes them.
        @Test(arguments: halfTypes, [[0], [0, 3], [2, 0], [0, 1 << 62], [1 << 40, 0, 1 << 20]])
        func emptyHalfTensors(dtype: Tensor.DType, shape: [Int]) throws {
            var empty = try Tensor(zeros: shape, dtype: dtype)
            #expect(empty.count == 0 && empty.scalars.isEmpty && empty.bitPatterns == [] && empty.bfloat16Scalars.isEmpty)
            #expect(empty.description.contains("\(dtype)"))
            for target in Tensor.DType.allCases {
                let converted = try empty.converted(to: target)
                #expect(converted.shape == shape && converted.dtype == target && converted.count == 0)
            }
            let (sameType, single) = (try Tensor(zeros: shape, dtype: dtype), try Tensor(zeros: shape))
            #expect(empty == sameType && empty != single)
            empty.withUnsafeBufferPointer { #expect($0.isEmpty) }
            empty.withUnsafeMutableBufferPointer { #expect($0.isEmpty) }
            empty.withUnsafeRawBufferPointer { #expect($0.isEmpty) }
            empty.withUnsafeMutableRawBufferPointer { #expect($0.isEmpty) }
            #expect(try empty.reshaped([-1]).shape == [0])
            #expect(try Tensor.concatenated([empty, empty], axis: 0).dtype == dtype)
            #expect(try empty.sliced(0..<0).shape == [0] + shape.dropFirst())
            if shape.count >= 2 {
                #expect(try empty.transposed().dtype == dtype)
            }
            // Layers take half-precision weights with empty inputs, and refuse half inputs.
            if (1..<(1 << 20)).contains(shape.last!) {
                let linear = try Linear(weight: Tensor(ones: [4, shape.last!], dtype: dtype))
                #expect(try linear(Tensor(zeros: shape)).shape == shape.dropLast() + [4])
                expectUnsupportedDType("input") { _ = try linear(empty) }
            }
            expectUnsupportedDType("self") { _ = try empty.scaled(by: 2) }
            expectUnsupportedDType("a") { _ = try matmul(Tensor(zeros: shape + [1], dtype: dtype), Tensor(zeros: [1, 1])) }

            var file = SafeTensors()
            try file.insert(empty, named: "empty")
            try file.insert(empty, named: "widened", as: .float32)
            let reread = try SafeTensors(data: file.serialized())
            #expect(try reread.tensor(named: "empty") == empty)
            #expect(try reread.tensor(named: "widened") == (try Tensor(zeros: shape)))
            #expect(try reread.tensor(named: "widened", as: dtype) == empty)
        }

        /// Empty attention problems in half precision: an empty result of the output dtype, or
        /// zeros when there is no key.
        @Test(arguments: halfTypes)
        func emptyHalfAttention(dtype: Tensor.DType) throws {
            for (q, k, v) in [
                ([0, 1 << 30, 1 << 30, 4], [0, 1 << 30, 5, 4], [0, 1 << 30, 5, 3]),
                ([1, 2, 0, 4], [1, 2, 5, 4], [1, 2, 5, 3]),
                ([1, 2, 3, 4], [1, 2, 0, 4], [1, 2, 0, 3]),
            ] {
                let (query, key, value) = (try Tensor(zeros: q, dtype: dtype), try Tensor(zeros: k, dtype: dtype), try Tensor(zeros: v, dtype: dtype))
                for output in [nil, Tensor.DType.float32] {
                    let out = try scaledDotProductAttention(query: query, key: key, value: value, outputDType: output)
                    #expect(out.shape == Array(q.dropLast()) + [3] && out.dtype == output ?? dtype)
                    #expect(out.scalars.allSatisfy { $0 == 0 })
                }
            }
        }

        /// NaN, infinities, signed zeros and subnormals in half-precision inputs give what float32
        /// attention gives on the widened values: NaN in the same places, the rest within tolerance.
        /// Every query length 1...30 (the row and decode kernels for short queries), both causal
        /// alignments, fused and unfused.
        @Test(arguments: halfTypes, 1...30)
        func specialValuesMatchFloat32(dtype: Tensor.DType, lengthQ: Int) throws {
            var rng = SeededGenerator(seed: UInt64(lengthQ))
            let lengthK = lengthQ + 3
            let smallest: Float = dtype == .float16 ? 0x1p-24 : 0x1p-133
            let q = try tensor([1, 2, lengthQ, 8], dtype: dtype, specials: [-0.0, smallest, -smallest, 0, .nan], &rng)
            let k = try tensor([1, 1, lengthK, 8], dtype: dtype, specials: [0, 0, -0.0], &rng)
            var kSpecial = k.half
            // A NaN in the last key, an infinity in key 1; a value row with -infinity and NaN.
            kSpecial[0, 0, lengthK - 1, 3] = .nan
            kSpecial[0, 0, 1, 2] = .infinity
            let v = try tensor([1, 1, lengthK, 5], dtype: dtype, specials: [.infinity, 0, -.infinity, .nan, smallest], &rng)
            let problems: [(Tensor, Tensor)] = [(q.half, q.widened), (kSpecial, try kSpecial.converted(to: .float32)), (v.half, v.widened)]
            for causal in [AttentionMask.Causal.none, .topLeft, .bottomRight] {
                for algorithm in AttentionAlgorithm.allCases {
                    for output in [nil, Tensor.DType.float32] {
                        let half = try scaledDotProductAttention(
                            query: problems[0].0, key: problems[1].0, value: problems[2].0, mask: .causal(causal),
                            algorithm: algorithm, outputDType: output)
                        let reference = try scaledDotProductAttention(
                            query: problems[0].1, key: problems[1].1, value: problems[2].1, mask: .causal(causal),
                            algorithm: algorithm)
                        let label = Comment(rawValue: "\(dtype) Lq \(lengthQ) \(causal) \(algorithm) out \(String(describing: output))")
                        #expect(half.dtype == output ?? dtype, label)
                        let (a, e) = (half.scalars, reference.scalars)
                        let nanMismatch = zip(a, e).filter { $0.isNaN != $1.isNaN }.count
                        #expect(nanMismatch == 0, "\(nanMismatch) NaN positions differ. \(label)")
                        let rounded: [Float] = try reference.converted(to: half.dtype).scalars
                        let largest: Float = e.filter(\.isFinite).map(abs).max() ?? 0
                        let bound: Double = attentionTolerance(half.dtype) * Double(max(1, largest))
                            + bfloat16DotAllowance(query: problems[0].0, key: problems[1].0, value: problems[2].0)
                        var worst: Double = 0
                        for (x, y) in zip(a, rounded) where !x.isNaN && !y.isNaN && x != y {
                            worst = max(worst, Double(abs(x - y)))
                        }
                        #expect(worst <= bound, "largest |diff| \(worst). \(label)")
                    }
                }
            }
        }

        /// attn.h: a row is NaN when a NaN reaches one of its *visible* scores, so a NaN in a key
        /// that the causal mask hides stays hidden (the double reference skips masked keys), in
        /// every dtype. A NaN in a value row reaches every row that attends it; a row that does not
        /// may get NaN in that feature (0 × NaN in P·V, as weights · V gives in PyTorch and JAX)
        /// but never a wrong finite number, and no other feature changes.
        @Test(arguments: Tensor.DType.allCases, [1, 2, 5, 16, 17, 25, 30])
        func nanInAMaskedKeyOrValueNeverGivesAWrongNumber(dtype: Tensor.DType, lengthQ: Int) throws {
            var rng = SeededGenerator(seed: 14)
            let (lengthK, dim, nanFeature) = (lengthQ + 2, 8, 2)
            // Rounded once, so the reference sees exactly what the kernels read.
            let q = try Tensor(randomNormal: [1, 1, lengthQ, dim], using: &rng).converted(to: dtype)
            let k = try Tensor(randomNormal: [1, 1, lengthK, dim], using: &rng).converted(to: dtype)
            let v = try Tensor(randomNormal: [1, 1, lengthK, dim], using: &rng).converted(to: dtype)
            for (hidden, causal) in [("key", AttentionMask.Causal.bottomRight), ("key", .topLeft), ("value", .bottomRight), ("value", .topLeft)] {
                var (key, value) = (k, v)
                if hidden == "key" { key[0, 0, lengthK - 1, nanFeature] = .nan } else { value[0, 0, lengthK - 1, nanFeature] = .nan }
                let reference = referenceAttention(
                    query: try q.converted(to: .float32), key: try key.converted(to: .float32),
                    value: try value.converted(to: .float32), mask: .causal(causal))
                let allowance = bfloat16DotAllowance(query: q, key: key, value: value)
                for algorithm in AttentionAlgorithm.allCases {
                    let out = try scaledDotProductAttention(
                        query: q, key: key, value: value, mask: .causal(causal), algorithm: algorithm, outputDType: .float32)
                    let label = "\(dtype) Lq \(lengthQ) NaN in a hidden \(hidden) \(causal) \(algorithm)"
                    for (index, (got, want)) in zip(out.scalars, reference.output).enumerated() {
                        if want.isNaN {
                            #expect(got.isNaN, "element \(index) must be NaN, got \(got). \(label)")
                        } else if got.isNaN {
                            #expect(hidden == "value" && index % dim == nanFeature,
                                    "element \(index) is NaN, want \(want). \(label)")
                        } else {
                            #expect(abs(Double(got) - want) <= 1e-4 * max(1, abs(want)) + allowance,
                                    "element \(index): \(got), want \(want). \(label)")
                        }
                    }
                }
            }
        }

        /// Conversions and the mutable accessors never change another tensor sharing the storage.
        @Test(arguments: halfTypes)
        func copyOnWriteThroughConversionsAndViews(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 12)
            let original = try Tensor(randomNormal: [3, 4], dtype: dtype, using: &rng)
            let snapshot = original.bitPatterns
            let view = try original.reshaped([4, 3])
            var same = try view.converted(to: dtype)     // shares the storage
            same[1, 1] = 1000
            var wide = try view.converted(to: .float32)
            wide[0, 0] = 1000
            var rawCopy = view
            rawCopy.withUnsafeMutableRawBufferPointer { $0.storeBytes(of: UInt16(0x7C00), as: UInt16.self) }
            var floatCopy = original
            floatCopy.withUnsafeMutableBufferPointer { $0[0] = 3 }
            #expect(floatCopy[0, 0] == 3)
            // A body that throws still rounds its writes back, into its own copy only.
            struct Stop: Error {}
            var throwing = original
            #expect(throws: Stop.self) {
                try throwing.withUnsafeMutableBufferPointer { values throws(Stop) in
                    values[1] = 5
                    throw Stop()
                }
            }
            #expect(throwing[0, 1] == 5)
            #expect(original.bitPatterns == snapshot && view.bitPatterns == snapshot)
            #expect(same[1, 1] == 1000 && wide[0, 0] == 1000)
        }

        /// `==` compares dtypes first: equal values in two dtypes are different tensors.
        @Test(arguments: halfTypes)
        func equalityAcrossDTypes(dtype: Tensor.DType) throws {
            let values: [Float] = [1, -2, 0.5, 0, -0.0]
            let single = try Tensor(shape: [5], scalars: values)
            let half = try single.converted(to: dtype)
            #expect(half.scalars == values)
            #expect(half != single && single != half)
            let other: Tensor.DType = dtype == .float16 ? .bfloat16 : .float16
            #expect(half != (try single.converted(to: other)))
            #expect(half == (try half.converted(to: .float32).converted(to: dtype)))
            // -0 equals 0, NaN equals only a tensor sharing its storage.
            #expect(try Tensor(shape: [1], scalars: [-0.0]).converted(to: dtype) == (try Tensor(zeros: [1], dtype: dtype)))
            let nan = try Tensor(shape: [1], scalars: [.nan]).converted(to: dtype)
            let (nanCopy, otherNaN) = (nan, try Tensor(shape: [1], scalars: [.nan]).converted(to: dtype))
            #expect(nan == nanCopy && nan != otherNaN)
        }

        /// What Swift writes is byte for byte what the reference `safetensors` library writes for
        /// the same tensors (see generate_half_written_bytes.py), and it reads that file exactly.
        @Test func writesTheBytesOfTheReferenceLibrary() throws {
            let reference = try Data(contentsOf: fixtureURL("half_written_bytes"))
            let tensors: [String: Tensor] = [
                "f16": try Tensor(shape: [4, 16], bitPatterns: writtenBitPatterns, dtype: .float16),
                "bf16": try Tensor(shape: [64], bitPatterns: writtenBitPatterns, dtype: .bfloat16),
                "f16_empty": try Tensor(zeros: [0, 3], dtype: .float16),
                "bf16_empty": try Tensor(zeros: [2, 0], dtype: .bfloat16),
                "f16_scalar": try Tensor(shape: [], bitPatterns: [0x3C00], dtype: .float16),
                "bf16_scalar": try Tensor(shape: [], bitPatterns: [0xBF80], dtype: .bfloat16),
                "f32": try Tensor(shape: [3], scalars: [1, -0.0, 2.5]),
            ]
            let written = try SafeTensors(tensors).serialized()
            #expect(written == reference, "\(written.count) bytes, the reference library wrote \(reference.count)")
            let read = try SafeTensors(data: reference)
            for (name, tensor) in tensors {
                let loaded = try read.tensor(named: name)
                #expect(loaded.dtype == tensor.dtype && loaded.shape == tensor.shape, "\(name)")
                #expect(loaded.bitPatterns == tensor.bitPatterns && loaded.scalars.map(\.bitPattern) == tensor.scalars.map(\.bitPattern), "\(name)")
            }
        }
    }
}
