import Testing
import Attention

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Tensor's arithmetic, reductions, element-wise functions, subscripts, literals and description,
// against straightforward double-precision references.

/// A random shape of `rank` dimensions, often 1 or odd.
private func randomShape(_ rank: Int, using rng: inout SeededGenerator) -> [Int] {
    (0..<rank).map { _ in [1, 1, 2, 3, 5, 7, 8][Int(rng.next() % 7)] }
}

/// `shape` with some dimensions replaced by 1 and some leading dimensions dropped: a shape that
/// broadcasts to it.
private func broadcastable(from shape: [Int], using rng: inout SeededGenerator) -> [Int] {
    let drop = Int(rng.next() % UInt64(shape.count + 1))
    return shape.dropFirst(drop).map { rng.next() % 3 == 0 ? 1 : $0 }
}

/// The element of a row-major array of `shape` at the multi-index `position` of a broadcast
/// shape (right-aligned; size-1 dimensions repeat).
private func broadcastElement(_ values: [Float], _ shape: [Int], at position: [Int]) -> Double {
    var offset = 0
    for (size, index) in zip(shape, position.suffix(shape.count)) { offset = offset * size + (size == 1 ? 0 : index) }
    return Double(values[offset])
}

/// Every multi-index of `shape` in row-major order.
private func positions(of shape: [Int]) -> [[Int]] {
    var result: [[Int]] = [[]]
    for size in shape { result = result.flatMap { p in (0..<size).map { p + [$0] } } }
    return shape.contains(0) ? [] : result
}

private func randomTensor(_ shape: [Int], using rng: inout SeededGenerator) throws -> Tensor {
    try Tensor(randomUniform: shape, in: -2..<2, using: &rng)
}

@Suite("Tensor arithmetic")
struct TensorArithmeticTests {
    @Test func broadcastingInEveryDirectionMatchesTheReference() throws {
        var rng = SeededGenerator(seed: 11)
        for trial in 0..<200 {
            let shape = randomShape(1 + trial % 4, using: &rng)
            var (shapeA, shapeB) = (shape, broadcastable(from: shape, using: &rng))
            if trial % 2 == 1 { swap(&shapeA, &shapeB) }
            if trial % 5 == 0 { shapeA = broadcastable(from: shape, using: &rng) }
            let a = try randomTensor(shapeA, using: &rng), b = try randomTensor(shapeB, using: &rng)
            let out = try a + b, diff = try a - b, prod = try a * b, quot = try a / b
            let expectedShape = try a.adding(b).shape
            #expect(out.shape == expectedShape)
            for (k, p) in positions(of: out.shape).enumerated() {
                let x = broadcastElement(a.scalars, a.shape, at: p), y = broadcastElement(b.scalars, b.shape, at: p)
                #expect(out.scalars[k] == Float(x + y))
                #expect(diff.scalars[k] == Float(x - y))
                #expect(prod.scalars[k] == Float(x * y))
                #expect(quot.scalars[k] == Float(a.scalars.isEmpty ? 0 : Float(x) / Float(y)))
            }
        }
    }

    @Test func scalarsOnEitherSideAndNegation() throws {
        let x = try Tensor([[1, -2], [0, 4]])
        #expect(try (x * 2 + 1).scalars == [3, -3, 1, 9])
        #expect(try (1 - x).scalars == [0, 3, 1, -3])
        #expect(try (2 / x).scalars == [2, -1, .infinity, 0.5])
        #expect(try (x / 2).scalars == [0.5, -1, 0, 2])
        let negated = try -x
        #expect(negated.scalars == [-1, 2, 0, -4])
        #expect(negated.scalars[2].sign == .minus)
        var y = x
        try y += 1
        try y *= x
        #expect(y.scalars == [2, 2, 0, 20])
        #expect(x.scalars == [1, -2, 0, 4])
        #expect(try x.scaled(by: 3).scalars == [3, -6, 0, 12])
    }

    @Test func specialValuesFollowIEEE() throws {
        let x: Tensor = [.nan, .infinity, -.infinity, 0]
        let y: Tensor = [1, -.infinity, -.infinity, 0]
        let sum = try x + y, quotient = try x / y
        #expect(sum.scalars[0].isNaN && sum.scalars[1].isNaN && sum.scalars[2] == -.infinity && sum.scalars[3] == 0)
        #expect(quotient.scalars[3].isNaN)
    }

    @Test func badShapesAndDTypesThrowNamingTheOperand() throws {
        let a = try Tensor(zeros: [2, 3]), b = try Tensor(zeros: [4])
        #expect(throws: AttentionError.shapeMismatch(
            argument: "rhs", expected: "a shape broadcastable with [2, 3], the shape of lhs", actual: [4])) {
            try a + b
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "other", expected: "a shape broadcastable with [2, 3], the shape of self", actual: [4])) {
            try a.adding(b)
        }
        let half = try a.converted(to: .bfloat16)
        for operation in [{ try half + a }, { try a * half }, { try half * 2 }, { try -half }] {
            #expect(throws: AttentionError.self) { try operation() }
        }
        #expect(throws: AttentionError.unsupportedDType(
            argument: "rhs", dtype: .bfloat16,
            reason: "this operation takes float32 only; convert explicitly with converted(to: .float32)")) {
            try a - half
        }
    }

    @Test func emptyAndHugeButEmptyShapes() throws {
        let empty = try Tensor(zeros: [0, 1 << 40])
        #expect(try (empty + 1).shape == [0, 1 << 40])
        #expect(try (empty * Tensor(ones: [1, 1 << 40 > 0 ? 1 : 1])).shape == [0, 1 << 40])
        #expect(try (Tensor(zeros: [3, 0]) + Tensor(zeros: [1, 0])).shape == [3, 0])
    }
}

@Suite("Tensor reductions")
struct TensorReductionTests {
    /// The reference reduction of `x` along `axis` (nil: all), in Double, first-occurrence extrema.
    private func reference(_ x: Tensor, axis: Int?, _ kind: String) -> (values: [Double], indices: [Int]) {
        let shape = axis == nil ? [1, x.count, 1] : [
            x.shape[..<axis!].reduce(1, *), x.shape[axis!], x.shape[(axis! + 1)...].reduce(1, *),
        ]
        let (outer, length, inner) = (shape[0], shape[1], shape[2])
        var values: [Double] = [], indices: [Int] = []
        let s = x.scalars
        for o in 0..<outer {
            for i in 0..<inner {
                let line = (0..<length).map { Double(s[(o * length + $0) * inner + i]) }
                switch kind {
                case "sum": values.append(line.reduce(0, +))
                case "mean": values.append(line.reduce(0, +) / Double(length))
                default:
                    var best = 0
                    for (k, v) in line.enumerated() {
                        if line[best].isNaN { break }
                        if v.isNaN || (kind == "max" ? v > line[best] : v < line[best]) { best = k }
                    }
                    values.append(line[best])
                    indices.append(best)
                }
            }
        }
        return (values, indices)
    }

    @Test func everyAxisAndAllAxesMatchTheReference() throws {
        var rng = SeededGenerator(seed: 5)
        for trial in 0..<120 {
            let shape = randomShape(1 + trial % 4, using: &rng).map { $0 == 8 ? 37 : $0 }
            var x = try randomTensor(shape, using: &rng)
            try x.withUnsafeMutableBufferPointer { buffer in
                for _ in 0..<Int(rng.next() % 3) {
                    buffer[Int(rng.next() % UInt64(buffer.count))] = [.nan, .infinity, -.infinity, 2.5][Int(rng.next() % 4)]
                }
            }
            for axis in [nil] + Array(-x.rank..<x.rank) {
                let normal = axis.map { $0 < 0 ? $0 + x.rank : $0 }
                for kind in ["sum", "mean", "max", "min"] {
                    let ref = reference(x, axis: normal, kind)
                    let got: Tensor = switch kind {
                    case "sum": try x.sum(alongAxis: axis)
                    case "mean": try x.mean(alongAxis: axis)
                    case "max": try x.max(alongAxis: axis)
                    default: try x.min(alongAxis: axis)
                    }
                    var expectedShape = x.shape
                    if let normal { expectedShape.remove(at: normal) } else { expectedShape = [] }
                    #expect(got.shape == expectedShape)
                    for (g, r) in zip(got.scalars, ref.values) {
                        if r.isNaN { #expect(g.isNaN) } else if r.isInfinite { #expect(Double(g) == r) } else {
                            #expect(Swift.abs(Double(g) - r) <= 1e-6 * Swift.max(1, Swift.abs(r)), "\(kind) \(shape) \(String(describing: axis))")
                        }
                    }
                    if kind == "max" || kind == "min" {
                        let indices = kind == "max" ? try x.argmax(alongAxis: axis) : try x.argmin(alongAxis: axis)
                        #expect(indices.indices == ref.indices, "arg\(kind) \(shape) \(String(describing: axis))")
                        #expect(indices.shape == expectedShape)
                    }
                }
            }
        }
    }

    @Test func keepingDimensionsAndNaNSemantics() throws {
        let x = try Tensor([[1, .nan, 3, .nan], [2, 7, 7, -1]])
        #expect(try x.sum(alongAxis: 1, keepingDimensions: true).shape == [2, 1])
        #expect(try x.max(keepingDimensions: true).shape == [1, 1])
        #expect(try x.argmax(alongAxis: 1).indices == [1, 1])
        #expect(try x.argmin(alongAxis: -1).indices == [1, 3])
        #expect(try x.argmax().indices == [1])
        #expect(try x.argmax(alongAxis: 0).indices == [1, 0, 1, 0])
        #expect(try x.max(alongAxis: 1).scalars[0].isNaN)
        #expect(try x.min(alongAxis: 1).scalars[1] == -1)
        let zeros = try Tensor([[0, -0.0], [-0.0, 0]])
        #expect(try zeros.max(alongAxis: 1).scalars.map(\.sign) == [.plus, .minus])
    }

    @Test func emptyAxes() throws {
        let x = try Tensor(zeros: [3, 0])
        #expect(try x.sum(alongAxis: 1).scalars == [0, 0, 0])
        #expect(try x.mean(alongAxis: 1).scalars.allSatisfy(\.isNaN))
        #expect(try x.sum(alongAxis: 0).shape == [0])
        #expect(try x.max(alongAxis: 0).shape == [0])
        #expect(try x.sum().scalars == [0])
        #expect(throws: AttentionError.invalidArgument(
            argument: "axis", reason: "the max along axis 1 of shape [3, 0] is undefined: there are no elements to take it of")) {
            try x.max(alongAxis: 1)
        }
        #expect(throws: AttentionError.self) { try x.argmin() }
        let huge = try Tensor(zeros: [0, 1 << 40])
        #expect(try huge.sum(alongAxis: 1).shape == [0])
        #expect(try huge.argmax(alongAxis: 1).shape == [0])
        #expect(throws: AttentionError.self) { try huge.sum(alongAxis: 0) }   // 2^40 floats
        #expect(throws: AttentionError.self) { try huge.max(alongAxis: 0) }
        #expect(throws: AttentionError.invalidArgument(
            argument: "axis", reason: "must be in -2..<2 for a tensor of shape [3, 0], got 2")) {
            try x.sum(alongAxis: 2)
        }
        #expect(throws: AttentionError.self) { try x.converted(to: .float16).sum() }
    }

    @Test func longRowsInTheKernel() throws {
        var rng = SeededGenerator(seed: 9)
        let x = try randomTensor([3, 10_001], using: &rng)
        let ref = reference(x, axis: 1, "sum")
        for (g, r) in zip(try x.sum(alongAxis: -1).scalars, ref.values) { #expect(Swift.abs(Double(g) - r) <= 1e-5) }
        #expect(try x.argmax(alongAxis: 1).indices == reference(x, axis: 1, "max").indices)
    }
}

@Suite("Tensor element-wise functions")
struct TensorElementwiseTests {
    @Test func specialValues() throws {
        let x: Tensor = [-1, 0, -0.0, 1, .infinity, -.infinity, .nan, 2]
        let l = try log(x).scalars
        #expect(l[0].isNaN && l[1] == -.infinity && l[2] == -.infinity && l[3] == 0 && l[4] == .infinity)
        #expect(l[5].isNaN && l[6].isNaN)
        let e = try exp(x).scalars
        #expect(e[1] == 1 && e[4] == .infinity && e[5] == 0 && e[6].isNaN)
        let s = try sqrt(x).scalars
        #expect(s[0].isNaN && s[2] == 0 && s[2].sign == .minus && s[4] == .infinity && s[5].isNaN && s[7] == Float(2).squareRoot())
        #expect(try abs(x).scalars[0] == 1)
        let t = try tanh(x).scalars
        #expect(t[4] == 1 && t[5] == -1 && t[6].isNaN)
        #expect(throws: AttentionError.self) { try exp(x.converted(to: .float16)) }
    }

    @Test func randomValuesAgainstDouble() throws {
        var rng = SeededGenerator(seed: 3)
        let x = try Tensor(randomUniform: [5, 7], in: 0.01..<10, using: &rng)
        for (f, g, ref) in [(exp, "exp", { Foundation_exp($0) }), (log, "log", { Foundation_log($0) })] as [((Tensor) throws -> Tensor, String, (Double) -> Double)] {
            for (v, r) in zip(try f(x).scalars, x.scalars.map { ref(Double($0)) }) {
                #expect(Swift.abs(Double(v) - r) <= 2e-7 * Swift.abs(r) + 1e-30, "\(g)")
            }
        }
    }
}

private func Foundation_exp(_ x: Double) -> Double { exp(x) }
private func Foundation_log(_ x: Double) -> Double { log(x) }

@Suite("Tensor subscripts, literals and description")
struct TensorLiteralsTests {
    @Test func rowsAndRanges() throws {
        let t = try Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6])
        #expect(try t[1].scalars == [3, 4] && t[1].shape == [2])
        #expect(try t[1..<3].shape == [2, 2])
        #expect(try t[1...].scalars == [3, 4, 5, 6])
        #expect(try t[..<1].scalars == [1, 2])
        #expect(try t[0][1].shape == [])
        #expect(try t[2..<2].shape == [0, 2])
        #expect(throws: AttentionError.invalidArgument(
            argument: "index", reason: "must be in 0..<3, the rows of shape [3, 2], got 3")) { try t[3] }
        #expect(throws: AttentionError.self) { try t[-1] }
        #expect(throws: AttentionError.self) { try t[2..<4] }
        #expect(throws: AttentionError.self) { try t[4...] }
        #expect(throws: AttentionError.self) { try Tensor(shape: [], scalars: [1])[0] }
        let half = try t.converted(to: .float16)
        #expect(try half[2].dtype == .float16 && half[2].scalars == [5, 6])
        var copy = try t[0]
        copy[0] = 9
        #expect(t[0, 0] == 1)
    }

    @Test func literalsAndInitialisers() throws {
        let v: Tensor = [1, 2.5, -3]
        #expect(v.shape == [3] && v.scalars == [1, 2.5, -3])
        let empty: Tensor = []
        #expect(empty.shape == [0])
        #expect(try Tensor([[1, 2, 3], [4, 5, 6]]).shape == [2, 3])
        #expect(try Tensor([[Float]]()).shape == [0, 0])
        #expect(throws: AttentionError.shapeMismatch(
            argument: "rows[1]", expected: "3 elements, the length of rows[0]", actual: [2])) {
            try Tensor([[1, 2, 3], [4, 5]])
        }
        #expect(try Tensor(arange: 0..<5).scalars == [0, 1, 2, 3, 4])
        #expect(try Tensor(arange: 0, to: 1, step: 0.25).scalars == [0, 0.25, 0.5, 0.75])
        #expect(try Tensor(arange: 3, to: 0, step: -1).scalars == [3, 2, 1])
        #expect(try Tensor(arange: 0, to: -1).count == 0)
        #expect(throws: AttentionError.self) { try Tensor(arange: 0, to: 1, step: 0) }
        #expect(throws: AttentionError.self) { try Tensor(arange: 0, to: .infinity) }
        #expect(try Tensor(eye: 3).scalars == [1, 0, 0, 0, 1, 0, 0, 0, 1])
        #expect(try Tensor(eye: 2, columns: 3, dtype: .bfloat16).scalars == [1, 0, 0, 0, 1, 0])
        #expect(throws: AttentionError.self) { try Tensor(eye: -1) }
    }

    @Test func descriptionFormat() throws {
        #expect(try Tensor([[1, 2], [3, 4]]).description == "Tensor([[1, 2],\n        [3, 4]])")
        #expect(try Tensor([[0.5, -1], [.nan, .infinity]]).description == "Tensor([[ 0.5, -1.0],\n        [ nan,  inf]])")
        #expect(try Tensor(shape: [], scalars: [3.5]).description == "Tensor(3.5)")
        #expect(try Tensor(shape: [], scalars: [-0.0]).description == "Tensor(-0)")
        #expect(try Tensor(zeros: [0]).description == "Tensor([])")
        #expect(try Tensor(zeros: [0, 1 << 40]).description == "Tensor([], shape: [0, 1099511627776])")
        #expect(try Tensor(arange: 0..<8).reshaped([2, 2, 2]).description
            == "Tensor([[[0, 1],\n         [2, 3]],\n\n        [[4, 5],\n         [6, 7]]])")
        #expect(try Tensor([[1, 2]]).converted(to: .float16).description == "Tensor([[1, 2]], dtype: float16)")
        #expect(try Tensor(arange: 0..<2000).reshaped([2, 1000]).description
            == "Tensor([[   0,    1,    2, ...,  997,  998,  999],\n        [1000, 1001, 1002, ..., 1997, 1998, 1999]], shape: [2, 1000])")
        let long = try Tensor(arange: 0..<30).description
        #expect(long.split(separator: "\n").allSatisfy { $0.count <= 75 })
        #expect(long.hasPrefix("Tensor([ 0,  1,  2,"))
        #expect(try Tensor([[3, 1], [0, 2]]).argmax(alongAxis: 1).description == "IndexArray([0, 1])")
    }
}
