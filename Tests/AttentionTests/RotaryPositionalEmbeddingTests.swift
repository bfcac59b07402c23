import Foundation
import Testing
@testable import Attention

/// The rotary embedding's float angles (as `transformers` computes them, for Llama) and its
/// in-place rotation of heads inside projection rows, each sequence from its own start.
@Suite("RotaryPositionalEmbedding: float angles and per-sequence starts")
struct RotaryPositionalEmbeddingTests {
    /// `transformers`' formula written out serially: `inv_freq = 1 / θ^(2i/d)` and the angle
    /// `Float(p) · inv_freq` in `Float`, cosine and sine in `Double` rounded to `Float`; the
    /// rotation of each half-split pair in `Double` from those. Returns the rotated rows and, per
    /// element, the rounding a float rotation may add (each product and the sum rounded once,
    /// with or without a fused multiply-add: 2⁻²⁴ (|a c| + |b s| + |result|)).
    func floatReference(_ x: Tensor, theta: Float, start: (Int) -> Int) -> (values: [Double], slack: [Double]) {
        let d = x.shape[x.rank - 1], length = x.shape[x.rank - 2]
        let xs = x.scalars
        var values = [Double](repeating: 0, count: xs.count), slack = values
        for row in 0 ..< xs.count / d {
            let position = start(row / length) + row % length
            for i in 0 ..< d / 2 {
                let inverseFrequency = 1 / powf(theta, Float(2 * i) / Float(d))
                let angle = Double(Float(position) * inverseFrequency)
                let (c, s) = (Double(Float(cos(angle))), Double(Float(sin(angle))))
                let (a, b) = (Double(xs[row * d + i]), Double(xs[row * d + i + d / 2]))
                let (ra, rb) = (a * c - b * s, b * c + a * s)
                values[row * d + i] = ra
                values[row * d + i + d / 2] = rb
                slack[row * d + i] = 0x1p-24 * (abs(a * c) + abs(b * s) + abs(ra))
                slack[row * d + i + d / 2] = 0x1p-24 * (abs(b * c) + abs(a * s) + abs(rb))
            }
        }
        return (values, slack)
    }

    func expectWithin(_ actual: Tensor, _ reference: (values: [Double], slack: [Double]), _ comment: Comment) {
        let worst = zip(actual.scalars, zip(reference.values, reference.slack)).map { got, want in
            abs(Double(got) - want.0) / max(want.1, 1e-40)
        }.max() ?? 0
        #expect(worst <= 1, "\(comment): \(worst) of the rounding bound")
    }

    @Test func floatAnglesAreTransformersFormula() throws {
        var rng = SeededGenerator(seed: 31)
        let rope = try RotaryPositionalEmbedding(embeddingSize: 32, theta: 500_000, anglePrecision: .float)
        let x = try Tensor(randomNormal: [2, 9, 32], using: &rng)
        for offset in [0, 1, 4096, 100_000] {
            expectWithin(
                try rope(x, positionOffset: offset), floatReference(x, theta: 500_000) { _ in offset }, "offset \(offset)")
        }
        // Far from 0 the float angles are not the double ones: the mode is not ignored.
        let double = try RotaryPositionalEmbedding(embeddingSize: 32, theta: 500_000)
        #expect(try rope(x, positionOffset: 100_000) != double(x, positionOffset: 100_000))
        #expect(rope != double && rope.anglePrecision == .float && double.anglePrecision == .double)
    }

    /// Heads at a column offset of projection rows `(B, L, width)`, sequence b from `starts[b]`:
    /// each sequence's heads as `rotateHeads` rotates them from that offset, the other columns
    /// untouched.
    @Test(arguments: RotaryPositionalEmbedding.AnglePrecision.allCases)
    func projectionRowsRotateFromEachSequencesStart(precision: RotaryPositionalEmbedding.AnglePrecision) throws {
        var rng = SeededGenerator(seed: 32)
        let (batch, length, heads, d, offset, width) = (3, 5, 2, 8, 8, 36)
        let starts = [0, 7, 100_000]
        let rope = try RotaryPositionalEmbedding(embeddingSize: d, theta: 10_000, anglePrecision: precision)
        let rows = try Tensor(randomNormal: [batch, length, width], using: &rng)
        // A tensor of its own is rotated where it is, without a copy.
        var rotated = try Tensor(shape: rows.shape, scalars: rows.scalars)
        let storage = ObjectIdentifier(rotated.storage)
        try rope.rotate(projection: &rotated, offset: offset, heads: heads, starts: starts)
        #expect(ObjectIdentifier(rotated.storage) == storage)
        let columns = offset ..< offset + heads * d
        for b in 0 ..< batch {
            let sequence = try rows.sliced(b ..< b + 1)
            var expected = try sequence.sliced(columns, axis: -1).reshaped([1, length, heads, d])
            try rope.rotateHeads(&expected, positionOffset: starts[b])
            let got = try rotated.sliced(b ..< b + 1)
            #expect(try got.sliced(columns, axis: -1).reshaped([1, length, heads, d]) == expected, "sequence \(b)")
            #expect(try got.sliced(0 ..< offset, axis: -1) == sequence.sliced(0 ..< offset, axis: -1))
            #expect(try got.sliced(columns.upperBound ..< width, axis: -1)
                == sequence.sliced(columns.upperBound ..< width, axis: -1))
            if precision == .float {
                let heads = try sequence.sliced(columns, axis: -1).reshaped([length, heads, d]).permuted([1, 0, 2])
                let want = floatReference(heads, theta: 10_000) { _ in starts[b] }
                expectWithin(try expected.reshaped([length, 2, d]).permuted([1, 0, 2]), want, "sequence \(b)")
            }
        }
    }

    @Test func projectionRowsReportBadArguments() throws {
        let rope = try RotaryPositionalEmbedding(embeddingSize: 4)
        var rows = try Tensor(zeros: [2, 3, 10])
        expectModuleError(argument: "starts") { try rope.rotate(projection: &rows, offset: 0, heads: 2, starts: [0]) }
        expectModuleError(argument: "starts") { try rope.rotate(projection: &rows, offset: 0, heads: 2, starts: [0, -1]) }
        expectModuleError(argument: "rows") { try rope.rotate(projection: &rows, offset: 4, heads: 2, starts: [0, 0]) }
        var flat = try Tensor(zeros: [6, 10])
        expectModuleError(argument: "rows") { try rope.rotate(projection: &flat, offset: 0, heads: 2, starts: [0]) }
        #expect(rows == (try Tensor(zeros: [2, 3, 10])))
    }
}
