import Testing
#if DEBUG
// For the C status mapping, which is internal. Release builds are not built for testing, so there
// the mapping test is left out and everything else runs.
@testable import Attention
import CAttention
#else
import Attention
#endif

/// Runs `body`, expecting an `AttentionError`, and returns it.
func expectAttentionError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> AttentionError? {
    do {
        try body()
        Issue.record("expected an AttentionError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as AttentionError {
        return error
    } catch {
        Issue.record("expected an AttentionError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension AttentionError {
    /// The argument an error names, when it names one.
    var argument: String? {
        switch self {
        case let .shapeMismatch(argument, _, _), let .invalidArgument(argument, _), let .overflow(argument):
            argument
        default:
            nil
        }
    }

    var isShapeMismatch: Bool { if case .shapeMismatch = self { true } else { false } }
    var isInvalidArgument: Bool { if case .invalidArgument = self { true } else { false } }
}

@Suite("Errors thrown by Tensor and BooleanMask")
struct TensorErrorTests {
    @Test func negativeDimension() {
        #expect(throws: AttentionError.invalidArgument(
            argument: "shape", reason: "dimension 1 of [2, -3] is -3; dimensions must be non-negative")
        ) {
            try Tensor(zeros: [2, -3])
        }
        for make in [
            { _ = try Tensor(shape: [-1], scalars: []) },
            { _ = try Tensor(ones: [-1]) },
            { _ = try Tensor(repeating: 1, shape: [4, -2]) },
            { var g = SeededGenerator(seed: 0); _ = try Tensor(randomNormal: [-1], using: &g) },
            { var g = SeededGenerator(seed: 0); _ = try Tensor(randomUniform: [-1], using: &g) },
            { _ = try BooleanMask(shape: [-1], values: []) },
            { _ = try BooleanMask(shape: [2, -1]) { _ in true } },
        ] as [() throws -> Void] {
            let error = expectAttentionError(make)
            #expect(error?.argument == "shape" && error?.isInvalidArgument == true, "\(String(describing: error))")
        }
    }

    @Test func elementCountOverflow() {
        #expect(throws: AttentionError.overflow(argument: "shape")) { try Tensor(zeros: [Int.max, 2]) }
        #expect(throws: AttentionError.overflow(argument: "shape")) {
            try Tensor(shape: [1 << 32, 1 << 32], scalars: [])
        }
        #expect(throws: AttentionError.overflow(argument: "shape")) {
            try BooleanMask(shape: [1 << 40, 1 << 40], values: [])
        }
        // The element count fits in Int but the byte count does not.
        #expect(throws: AttentionError.overflow(argument: "shape")) { try Tensor(zeros: [1 << 62]) }
    }

    @Test func outOfMemory() {
        // 2^60 floats: 4 EiB, more than any address space provides.
        #expect(throws: AttentionError.outOfMemory(requestedBytes: 1 << 62)) { try Tensor(zeros: [1 << 60]) }
    }

    @Test func scalarCountMismatch() {
        #expect(throws: AttentionError.shapeMismatch(argument: "scalars", expected: "6 scalars for shape [2, 3]", actual: [5])) {
            try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5])
        }
        #expect(throws: AttentionError.shapeMismatch(argument: "values", expected: "2 values for shape [2]", actual: [3])) {
            try BooleanMask(shape: [2], values: [true, true, false])
        }
    }

    @Test func reshapeErrors() throws {
        let t = try Tensor(zeros: [2, 6])
        #expect(throws: AttentionError.shapeMismatch(
            argument: "shape", expected: "a shape of 12 elements, like [2, 6]", actual: [5, 2])
        ) { try t.reshaped([5, 2]) }
        var error = expectAttentionError { _ = try t.reshaped([-1, -1]) }
        #expect(error?.argument == "shape" && error?.isInvalidArgument == true)
        error = expectAttentionError { _ = try t.reshaped([5, -1]) }
        #expect(error?.argument == "shape" && error?.isInvalidArgument == true)
        error = expectAttentionError { _ = try Tensor(zeros: [0, 3]).reshaped([0, -1]) }
        #expect(error?.argument == "shape" && error?.isInvalidArgument == true)
        error = expectAttentionError { _ = try t.reshaped([-2, -6]) }
        #expect(error?.argument == "shape" && error?.isInvalidArgument == true)
    }

    @Test func randomInitialiserArguments() {
        var g = SeededGenerator(seed: 0)
        #expect(throws: AttentionError.invalidArgument(argument: "mean", reason: "must be finite, got inf")) {
            try Tensor(randomNormal: [2], mean: .infinity, using: &g)
        }
        for sd in [Float(-1), .nan, .infinity] {
            let error = expectAttentionError { _ = try Tensor(randomNormal: [2], standardDeviation: sd, using: &g) }
            #expect(error?.argument == "standardDeviation" && error?.isInvalidArgument == true)
        }
        for range in [Float(1)..<1, -Float.infinity..<0, 0..<Float.infinity, -Float.greatestFiniteMagnitude..<Float.greatestFiniteMagnitude] {
            let error = expectAttentionError { _ = try Tensor(randomUniform: [2], in: range, using: &g) }
            #expect(error?.argument == "range" && error?.isInvalidArgument == true, "\(range)")
        }
    }

    @Test func descriptions() {
        #expect(AttentionError.shapeMismatch(argument: "key", expected: "[2, Hkv, Lk, 16]", actual: [2, 3, 7, 8]).description
            == "key has shape [2, 3, 7, 8], expected [2, Hkv, Lk, 16]")
        #expect(AttentionError.invalidArgument(argument: "threads", reason: "must be positive").description
            == "threads: must be positive")
        #expect(AttentionError.overflow(argument: "shape").description
            == "shape: a size or offset computed from it does not fit in Int")
        #expect(AttentionError.outOfMemory(requestedBytes: 64).description == "out of memory: could not allocate 64 bytes")
        #expect(AttentionError.outOfMemory(requestedBytes: nil).description
            == "out of memory: the kernels could not allocate their workspace")
        #expect(AttentionError.unsupported(feature: "neon", reason: "not here").description == "neon is unsupported: not here")
        #expect(AttentionError.kernelFailure(status: 3, message: "m").description == "kernel failure (status 3): m")
    }
}

extension KernelTests {
    @Suite("Errors thrown by scaledDotProductAttention")
    struct AttentionCallErrorTests {
        let q: Tensor, k: Tensor, v: Tensor

        init() throws {
            (q, k, v) = try Problem(batch: 2, headsQ: 8, headsKV: 4, lengthQ: 5, lengthK: 7, dimQK: 16, dimV: 12).tensors()
        }

        func call(
            query: Tensor? = nil, key: Tensor? = nil, value: Tensor? = nil, mask: AttentionMask = .unmasked,
            scale: Float? = nil, dropout: Dropout? = nil, threads: Int? = nil
        ) -> AttentionError? {
            // Both entry points and both algorithms validate identically.
            var errors: [AttentionError?] = []
            for algorithm in AttentionAlgorithm.allCases {
                errors.append(expectAttentionError {
                    _ = try scaledDotProductAttention(
                        query: query ?? q, key: key ?? k, value: value ?? v, mask: mask, scale: scale,
                        dropout: dropout, threads: threads, algorithm: algorithm)
                })
                errors.append(expectAttentionError {
                    _ = try scaledDotProductAttentionWithLogSumExp(
                        query: query ?? q, key: key ?? k, value: value ?? v, mask: mask, scale: scale,
                        dropout: dropout, threads: threads, algorithm: algorithm)
                })
            }
            #expect(Set(errors.map { $0?.description }).count == 1)
            return errors[0]
        }

        @Test func queryRank() throws {
            for shape in [[80], [1, 2, 5, 7, 16]] {
                let query = try Tensor(zeros: shape)
                #expect(call(query: query) == .shapeMismatch(
                    argument: "query", expected: "rank 2 (Lq, Dqk), 3 (Hq, Lq, Dqk) or 4 (B, Hq, Lq, Dqk)",
                    actual: shape))
            }
        }

        @Test func keyAndValueRanks() throws {
            #expect(call(key: try k.reshaped([8, 7, 16])) == .shapeMismatch(
                argument: "key", expected: "rank 4 like the query [2, 8, 5, 16]: (B, Hkv, Lk, Dqk)", actual: [8, 7, 16]))
            #expect(call(value: try v.reshaped([8, 7, 12])) == .shapeMismatch(
                argument: "value", expected: "rank 4 like the query [2, 8, 5, 16]: (B, Hkv, Lk, Dv)", actual: [8, 7, 12]))
        }

        @Test func emptyDimensions() throws {
            // A batch or a sequence may be empty (EmptyShapesTests); heads and features may not.
            #expect(try scaledDotProductAttention(query: Tensor(zeros: [2, 8, 0, 16]), key: k, value: v).shape == [2, 8, 0, 12])
            #expect(try scaledDotProductAttention(query: q, key: Tensor(zeros: [2, 4, 0, 16]), value: Tensor(zeros: [2, 4, 0, 12]))
                .scalars.allSatisfy { $0 == 0 })
            #expect(call(value: try Tensor(zeros: [2, 4, 7, 0])) == .invalidArgument(
                argument: "value",
                reason: "heads and features must be at least 1 and no dimension negative (a batch or a sequence "
                    + "may be empty), got shape [2, 4, 7, 0]"))
            #expect(call(query: try Tensor(zeros: [2, 0, 5, 16]))?.argument == "query")
        }

        @Test func keyBatchAndFeatureSize() throws {
            for shape in [[1, 4, 7, 16], [2, 4, 7, 15]] {
                #expect(call(key: try Tensor(zeros: shape)) == .shapeMismatch(
                    argument: "key",
                    expected: "[2, Hkv, Lk, 16] (B, Hkv, Lk, Dqk) with the batch and feature sizes of the query [2, 8, 5, 16]",
                    actual: shape))
            }
        }

        @Test func headsNotDividing() throws {
            let error = call(key: try Tensor(zeros: [2, 3, 7, 16]), value: try Tensor(zeros: [2, 3, 7, 12]))
            #expect(error == .shapeMismatch(
                argument: "key",
                expected: "[2, Hkv, Lk, 16] with Hkv dividing the query's 8 heads (grouped-query attention)",
                actual: [2, 3, 7, 16]))
            #expect(error?.description
                == "key has shape [2, 3, 7, 16], expected [2, Hkv, Lk, 16] with Hkv dividing the query's 8 heads (grouped-query attention)")
        }

        @Test func valueNotMatchingKey() throws {
            for shape in [[1, 4, 7, 12], [2, 2, 7, 12], [2, 4, 6, 12]] {
                #expect(call(value: try Tensor(zeros: shape)) == .shapeMismatch(
                    argument: "value", expected: "[2, 4, 7, Dv] (B, Hkv, Lk, Dv) matching the key [2, 4, 7, 16]",
                    actual: shape))
            }
            // Rank 2: the pattern shows only (Lk, Dv).
            let error = call(query: try Tensor(zeros: [5, 16]), key: try Tensor(zeros: [7, 16]), value: try Tensor(zeros: [6, 3]))
            #expect(error == .shapeMismatch(
                argument: "value", expected: "[7, Dv] (Lk, Dv) matching the key [7, 16]", actual: [6, 3]))
        }

        @Test func window() {
            #expect(call(mask: AttentionMask(window: .init(left: -1))) == .invalidArgument(
                argument: "mask.window.left", reason: "must be non-negative, or nil for unbounded; got -1"))
            #expect(call(mask: AttentionMask(window: .init(left: 2, right: -5))) == .invalidArgument(
                argument: "mask.window.right", reason: "must be non-negative, or nil for unbounded; got -5"))
        }

        @Test func keyLengths() {
            #expect(call(mask: AttentionMask(keyLengths: [7])) == .shapeMismatch(
                argument: "mask.keyLengths", expected: "[2]: one length per batch of the query [2, 8, 5, 16]", actual: [1]))
            #expect(call(mask: AttentionMask(keyLengths: [3, 8])) == .invalidArgument(
                argument: "mask.keyLengths[1]", reason: "must be in 0...7 (Lk, the key length of [2, 4, 7, 16]), got 8"))
            #expect(call(mask: AttentionMask(keyLengths: [-1, 2]))?.argument == "mask.keyLengths[0]")
        }

        @Test(arguments: [[2, 8, 5, 6], [3, 1, 1, 7], [5, 5, 7], [1, 2, 8, 5, 7], [0, 7], [6]])
        func booleanMaskAndBiasNotBroadcastable(shape: [Int]) throws {
            let count = shape.reduce(1, *)
            let booleanMask = try BooleanMask(shape: shape, values: Array(repeating: true, count: count))
            #expect(call(mask: AttentionMask(booleanMask: booleanMask)) == .shapeMismatch(
                argument: "mask.booleanMask", expected: "a shape broadcastable to [2, 8, 5, 7] (B, Hq, Lq, Lk)",
                actual: shape))
            #expect(call(mask: AttentionMask(bias: try Tensor(zeros: shape))) == .shapeMismatch(
                argument: "mask.bias", expected: "a shape broadcastable to [2, 8, 5, 7] (B, Hq, Lq, Lk)", actual: shape))
        }

        @Test(arguments: [Float(0), -0.0, .infinity, -.infinity, .nan])
        func scale(scale: Float) {
            let error = call(scale: scale)
            #expect(error?.argument == "scale" && error?.isInvalidArgument == true)
        }

        @Test(arguments: [Float(1), 1.5, -0.1, .nan, .infinity])
        func dropoutProbability(probability: Float) {
            let error = call(dropout: Dropout(probability: probability, seed: 0))
            #expect(error?.argument == "dropout.probability" && error?.isInvalidArgument == true)
        }

        @Test(arguments: [0, -1, 1025, Int.max])
        func threads(threads: Int) {
            #expect(call(threads: threads) == .invalidArgument(
                argument: "threads",
                reason: "must be in 1...1024, or nil for AttentionBackend.threadCount; got \(threads)"))
        }
    }

    @Suite("Errors thrown by AttentionBackend")
    struct BackendErrorTests {
        @Test(arguments: [0, -1, 1025])
        func threadCount(count: Int) {
            let before = AttentionBackend.threadCount
            #expect(throws: AttentionError.invalidArgument(
                argument: "count", reason: "must be in 1...1024, or nil for the default; got \(count)")
            ) { try AttentionBackend.setThreadCount(count) }
            #expect(AttentionBackend.threadCount == before)
        }

        @Test func unsupportedInstructionSet() throws {
            let unsupported = AttentionBackend.InstructionSet.allCases.filter { !AttentionBackend.isSupported($0) }
            // On x86-64 NEON is never supported; on arm64 neither AVX path is.
            try #require(!unsupported.isEmpty)
            let before = AttentionBackend.instructionSet
            for isa in unsupported {
                let error = expectAttentionError { try AttentionBackend.setInstructionSet(isa) }
                guard case let .unsupported(feature, reason) = error else {
                    Issue.record("expected .unsupported, got \(String(describing: error))")
                    continue
                }
                #expect(feature == isa.rawValue)
                #expect(reason.hasPrefix("this CPU or build does not support it (supported: "))
                #expect(AttentionBackend.instructionSet == before)
            }
        }
    }
}

#if DEBUG
@Suite("C status mapping")
struct StatusMappingTests {
    @Test func everyStatus() {
        let context = "query [1, 1, 1, 1], key [1, 1, 1, 1], value [1, 1, 1, 1]"
        #expect(AttentionError(status: ATTN_OK, function: "attn_forward", context: context) == nil)
        #expect(AttentionError(status: ATTN_ERR_OUT_OF_MEMORY, function: "attn_forward", context: context)
            == .outOfMemory(requestedBytes: nil))
        #expect(AttentionError(status: ATTN_ERR_OVERFLOW, function: "attn_forward", context: context)
            == .overflow(argument: context))
        #expect(AttentionError(status: ATTN_ERR_UNSUPPORTED, function: "attn_forward", context: context)
            == .unsupported(feature: "attn_forward(\(context))", reason: "unsupported on this CPU or build"))
        for (status, text) in [
            (ATTN_ERR_NULL_POINTER, "a required pointer is null"),
            (ATTN_ERR_INVALID_ARGUMENT, "invalid argument"),
            (ATTN_ERR_INVALID_STRIDE, "invalid stride"),
            (attn_status(rawValue: 99), "unknown status"),
        ] {
            #expect(AttentionError(status: status, function: "attn_forward_unfused", context: context)
                == .kernelFailure(
                    status: Int32(status.rawValue),
                    message: "attn_forward_unfused returned \"\(text)\" for \(context)"))
        }
    }
}
#endif
