import Testing
@testable import Attention

/// Parameters stored other than as they are named: blocks of rows of a stacked tensor (a decoder's
/// q/k/v projection) and a transposed weight.
struct StackedAndTransposed: ParameterizedModule, Equatable {
    /// `q` (2, 3) and `k` (4, 3), stacked.
    var stacked: Tensor
    /// `w`, named (2, 5), stored (5, 2).
    var kernel: Tensor

    var matrixWeightNames: Set<String> { ["q", "k", "w"] }

    var parameterPaths: [ParameterPath<Self>] {
        [
            ParameterPath("q", \.stacked, storage: .rows(0..<2)), ParameterPath("k", \.stacked, storage: .rows(2..<6)),
            ParameterPath("w", \.kernel, storage: .transposed),
        ]
    }
}

@Suite("Parameters stored stacked or transposed")
struct ParameterStorageTests {
    func module() throws -> StackedAndTransposed {
        StackedAndTransposed(
            stacked: try Tensor(shape: [6, 3], scalars: (0..<18).map(Float.init)),
            kernel: try Tensor(shape: [5, 2], scalars: (0..<10).map(Float.init)))
    }

    @Test func namesShapesAndValuesAreTheParameters() throws {
        let m = try module()
        #expect(m.parameterShapes.map(\.shape) == [[2, 3], [4, 3], [2, 5]] && m.parameterCount == 28)
        let parameters = m.parameterDictionary()
        #expect(parameters["k"]?.scalars == (6..<18).map(Float.init))
        let transposed = try m.kernel.transposed()
        #expect(parameters["w"] == transposed)
    }

    @Test func loadingWritesTheBlocksAndTransposesOnce() throws {
        var m = try module()
        let q = try Tensor(repeating: -1, shape: [2, 3]), k = try Tensor(repeating: 2, shape: [4, 3])
        let w = try Tensor(shape: [2, 5], scalars: (0..<10).map { Float($0) * 10 })
        try m.loadParameters(from: ["q": q, "k": k, "w": w])
        let expectedStack = try Tensor.concatenated([q, k], axis: 0), expectedKernel = try w.transposed()
        #expect(m.stacked == expectedStack && m.kernel == expectedKernel)
        // One block alone keeps the other rows and the stored dtype.
        try m.loadParameters(from: ["k": Tensor(zeros: [4, 3])], strict: false)
        #expect(m.stacked.scalars == Array(repeating: -1, count: 6) + Array(repeating: 0, count: 12))
        // Every block in bf16: the stacked tensor becomes bf16, as stored; one block: converted.
        try m.loadParameters(from: ["q": q.converted(to: .bfloat16), "k": k.converted(to: .bfloat16), "w": w])
        #expect(m.stacked.dtype == .bfloat16)
        try m.loadParameters(from: ["q": q], strict: false)
        #expect(m.stacked.dtype == .bfloat16)
        let widened = try m.convertingWeights(to: .float32)
        #expect(widened.stacked.dtype == .float32)
    }

    @Test func shapesAreCheckedAgainstTheNamedLayout() throws {
        var m = try module()
        let before = m
        #expect(throws: AttentionError.checkpointMismatch(
            missing: [], unexpected: [],
            shapeMismatches: [ParameterShapeMismatch(name: "w", expected: [2, 5], actual: [5, 2])])) {
            try m.loadParameters(from: ["q": Tensor(zeros: [2, 3]), "k": Tensor(zeros: [4, 3]), "w": Tensor(zeros: [5, 2])])
        }
        #expect(m == before)
    }
}

extension KernelTests {
    /// The one key/value cache holds each sequence's own number of positions.
    @Suite("KeyValueCache lengths")
    struct KeyValueCacheLengthTests {
        @Test func sequencesAppendTheirOwnCounts() throws {
            var cache = try KeyValueCache(batchShape: [2], maxLength: 5, heads: 1, headDimension: 2)
            let rows = try Tensor(shape: [2, 3, 2], scalars: (0..<12).map(Float.init))
            let heads = StridedHeads(rows: rows, batch: 2, length: 3, rowWidth: 2, heads: 1, dim: 2)
            try cache.append(keys: heads, values: heads, counts: [3, 1])
            #expect(cache.lengths == [3, 1] && cache.index == 3 && cache.remaining == 2)
            try cache.append(keys: heads, values: heads, counts: [1, 2])
            #expect(cache.lengths == [4, 3])
            #expect(cache.key.scalars == [0, 1, 2, 3, 4, 5, 0, 1, 0, 0] + [6, 7, 6, 7, 8, 9, 0, 0, 0, 0])
            cache.removeLast([1, 2])
            #expect(cache.lengths == [3, 1] && cache.key.scalars == [0, 1, 2, 3, 4, 5, 0, 0, 0, 0] + [6, 7] + Array(repeating: 0, count: 8))
            // Flax's decode steps every sequence at once.
            var rng = SeededGenerator(seed: 4)
            let attention = try MultiHeadDotProductAttention(heads: 1, inputFeatures: 2, using: &rng)
            #expect(throws: AttentionError.self) { _ = try attention.decode(Tensor(zeros: [2, 1, 2]), cache: &cache) }
        }
    }
}
