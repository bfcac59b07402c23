import Foundation
import Testing
import Attention

/// The coordinates of element `index` of a row-major array of `shape`.
private func coordinates(of index: Int, in shape: [Int]) -> [Int] {
    var rest = index
    var result = [Int](repeating: 0, count: shape.count)
    for axis in shape.indices.reversed() {
        result[axis] = rest % shape[axis]
        rest /= shape[axis]
    }
    return result
}

/// A random shape for one operand of a broadcast to `target`: some leading dimensions dropped,
/// some others set to 1.
private func broadcastOperand(of target: [Int], using rng: inout SeededGenerator) -> [Int] {
    let dropped = Int.random(in: 0...target.count, using: &rng)
    return target.dropFirst(dropped).map { Bool.random(using: &rng) ? 1 : $0 }
}

private func randomTensor(_ shape: [Int], using rng: inout SeededGenerator) throws -> Tensor {
    try Tensor(randomUniform: shape, in: -2..<2, using: &rng)
}

@Suite("Building blocks: matmul, softmax, broadcasting")
struct BuildingBlocksTests {
    // MARK: matmul

    /// `a @ b` in Double, batch dimensions broadcast, either operand read transposed.
    private func referenceMatmul(_ a: Tensor, _ b: Tensor, transposingA: Bool, transposingB: Bool) -> (shape: [Int], values: [Double]) {
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposingA ? (ac, ar) : (ar, ac)
        let n = transposingB ? br : bc
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let rank = max(batchA.count, batchB.count)
        let paddedA = Array(repeating: 1, count: rank - batchA.count) + batchA
        let paddedB = Array(repeating: 1, count: rank - batchB.count) + batchB
        let batch = zip(paddedA, paddedB).map { $0 == 1 ? $1 : $0 }
        let shape = batch + [m, n]
        let (x, y) = (a.scalars, b.scalars)
        let count = shape.reduce(1, *)
        var values = [Double](repeating: 0, count: count)
        for index in 0..<count {
            let c = coordinates(of: index, in: shape)
            let (i, j) = (c[rank], c[rank + 1])
            let matrixA = broadcastOffset(batchA, Array(c.prefix(rank))) * ar * ac
            let matrixB = broadcastOffset(batchB, Array(c.prefix(rank))) * br * bc
            var sum = 0.0
            for p in 0..<k {
                let aValue = x[matrixA + (transposingA ? p * ac + i : i * ac + p)]
                let bValue = y[matrixB + (transposingB ? j * bc + p : p * bc + j)]
                sum += Double(aValue) * Double(bValue)
            }
            values[index] = sum
        }
        return (shape, values)
    }

    @Test(arguments: 0..<40)
    func matmulMatchesTheReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 100 + seed)
        let batch = (0..<Int.random(in: 0...3, using: &rng)).map { _ in Int.random(in: 0...3, using: &rng) }
        let (m, k, n) = (Int.random(in: 0...9, using: &rng), Int.random(in: 0...9, using: &rng), Int.random(in: 0...9, using: &rng))
        let (transposingA, transposingB) = (Bool.random(using: &rng), Bool.random(using: &rng))
        let a = try randomTensor(broadcastOperand(of: batch, using: &rng) + (transposingA ? [k, m] : [m, k]), using: &rng)
        let b = try randomTensor(broadcastOperand(of: batch, using: &rng) + (transposingB ? [n, k] : [k, n]), using: &rng)
        let expected = referenceMatmul(a, b, transposingA: transposingA, transposingB: transposingB)
        let product = try matmul(a, b, transposingA: transposingA, transposingB: transposingB)
        expectClose(product, expected.values, shape: expected.shape, "a \(a.shape) \(transposingA) b \(b.shape) \(transposingB)")
    }

    @Test func matmulOfLargerMatricesUsesTheKernelPath() throws {
        var rng = SeededGenerator(seed: 7)
        let a = try randomTensor([2, 1, 70, 33], using: &rng)
        let b = try randomTensor([3, 65, 33], using: &rng)
        let expected = referenceMatmul(a, b, transposingA: false, transposingB: true)
        expectClose(try matmul(a, b, transposingB: true), expected.values, shape: [2, 3, 70, 65])
    }

    @Test func matmulErrorsNameTheArgument() throws {
        let a = try Tensor(zeros: [2, 3, 4])
        #expect(throws: AttentionError.shapeMismatch(
            argument: "a", expected: "rank 2 or more: [batch..., rows, columns]", actual: [4])) {
            try matmul(Tensor(zeros: [4]), a)
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "b", expected: "rank 2 or more: [batch..., rows, columns]", actual: [])) {
            try matmul(a, Tensor(zeros: []))
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "b", expected: "[batch..., 4, N]: its inner dimension matching the 4 columns of a [2, 3, 4]",
            actual: [5, 6])) {
            try matmul(a, Tensor(zeros: [5, 6]))
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "b", expected: "[batch..., N, 3]: its inner dimension matching the 3 columns of a [2, 3, 4] transposed",
            actual: [6, 4])) {
            try matmul(a, Tensor(zeros: [6, 4]), transposingA: true, transposingB: true)
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "b", expected: "batch dimensions broadcastable with [2], those of a [2, 3, 4]", actual: [3, 4, 5])) {
            try matmul(a, Tensor(zeros: [3, 4, 5]))
        }
    }

    // MARK: softmax

    /// The softmax of every line along `axis`, in Double; `masked` for a line of `-infinity`.
    private func referenceSoftmax(_ x: Tensor, axis: Int, masked: MaskedRowPolicy) -> [Double] {
        let values = x.scalars.map(Double.init)
        var result = [Double](repeating: 0, count: values.count)
        let length = x.shape[axis]
        let stride = x.shape[(axis + 1)...].reduce(1, *)
        for index in values.indices where (index / stride) % length == 0 {
            let line = (0..<length).map { index + $0 * stride }
            let maximum = line.map { values[$0] }.max()!
            let weights: [Double]
            if line.contains(where: { values[$0].isNaN || values[$0] == .infinity }) {
                weights = line.map { _ in .nan }
            } else if maximum == -.infinity {
                let fill: Double = switch masked {
                case .zero: 0
                case .nan: .nan
                case .meanOfValues: 1 / Double(length)
                }
                weights = line.map { _ in fill }
            } else {
                let exps = line.map { Foundation.exp(values[$0] - maximum) }
                let sum = exps.reduce(0, +)
                weights = exps.map { $0 / sum }
            }
            for (position, weight) in zip(line, weights) { result[position] = weight }
        }
        return result
    }

    @Test(arguments: 0..<30)
    func softmaxMatchesTheReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 300 + seed)
        let shape = (0..<Int.random(in: 1...4, using: &rng)).map { _ in Int.random(in: 0...5, using: &rng) }
        var x = try Tensor(randomNormal: shape, standardDeviation: 3, using: &rng)
        // Some -infinity entries, sometimes whole lines of them.
        x.withUnsafeMutableBufferPointer { buffer in
            for index in buffer.indices where Int.random(in: 0..<4, using: &rng) == 0 { buffer[index] = -.infinity }
        }
        let axis = Int.random(in: -shape.count..<shape.count, using: &rng)
        let policy = MaskedRowPolicy.allCases.randomElement(using: &rng)!
        let normalized = axis < 0 ? axis + shape.count : axis
        expectClose(
            try x.softmax(alongAxis: axis, maskedRows: policy), referenceSoftmax(x, axis: normalized, masked: policy),
            shape: shape, "shape \(shape) axis \(axis) \(policy)")
    }

    @Test func softmaxEdgeValuesAndErrors() throws {
        let x = try Tensor(shape: [4, 3], scalars: [
            0, 1, 2,
            -.infinity, -.infinity, -.infinity,
            .nan, 0, 1,
            .infinity, 0, 1,
        ])
        let plain = try x.softmax()
        #expect(plain.scalars[3...].allSatisfy { $0.isNaN })
        #expect(try x.softmax(maskedRows: .zero).scalars[3..<6] == [0, 0, 0])
        #expect(try x.softmax(maskedRows: .meanOfValues).scalars[3..<6].allSatisfy { abs($0 - 1 / 3) < 1e-6 })
        #expect(throws: AttentionError.invalidArgument(argument: "axis", reason: "must be in -2..<2 for a tensor of shape [4, 3], got 2")) {
            try x.softmax(alongAxis: 2)
        }
        #expect(throws: AttentionError.invalidArgument(argument: "axis", reason: "must be in 0..<0 for a tensor of shape [], got -1")) {
            try Tensor(shape: [], scalars: [1]).softmax()
        }
    }

    // MARK: element-wise

    @Test(arguments: 0..<30)
    func addingAndMultiplyingBroadcast(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 500 + seed)
        let target = (0..<Int.random(in: 0...4, using: &rng)).map { _ in Int.random(in: 0...4, using: &rng) }
        let (shapeA, shapeB) = (broadcastOperand(of: target, using: &rng), broadcastOperand(of: target, using: &rng))
        let (a, b) = (try randomTensor(shapeA, using: &rng), try randomTensor(shapeB, using: &rng))
        let rank = max(shapeA.count, shapeB.count)
        let paddedA = Array(repeating: 1, count: rank - shapeA.count) + shapeA
        let paddedB = Array(repeating: 1, count: rank - shapeB.count) + shapeB
        let shape = zip(paddedA, paddedB).map { $0 == 1 ? $1 : $0 }
        let (x, y) = (a.scalars, b.scalars)
        let pairs = (0..<shape.reduce(1, *)).map { index in
            let c = coordinates(of: index, in: shape)
            return (Double(x[broadcastOffset(shapeA, c)]), Double(y[broadcastOffset(shapeB, c)]))
        }
        let note = Comment(rawValue: "\(shapeA) and \(shapeB)")
        expectClose(try a.adding(b), pairs.map { $0 + $1 }, shape: shape, note)
        expectClose(try a.multiplying(b), pairs.map { $0 * $1 }, shape: shape, note)
    }

    @Test func elementWiseErrorsNameOtherWithBothShapes() throws {
        let a = try Tensor(zeros: [2, 3])
        let error = AttentionError.shapeMismatch(
            argument: "other", expected: "a shape broadcastable with [2, 3], the shape of self", actual: [2])
        #expect(throws: error) { try a.adding(Tensor(zeros: [2])) }
        #expect(throws: error) { try a.multiplying(Tensor(zeros: [2])) }
        // Equal shapes keep their behaviour, empty ones included.
        #expect(try a.adding(Tensor(ones: [2, 3])).scalars == [1, 1, 1, 1, 1, 1])
        #expect(try Tensor(zeros: [0, 3]).multiplying(Tensor(zeros: [3])).shape == [0, 3])
    }
}
