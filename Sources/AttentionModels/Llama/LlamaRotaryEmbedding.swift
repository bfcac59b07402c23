import Foundation

/// The rotary position embedding of a Llama model (`transformers`' `LlamaRotaryEmbedding` with
/// the default rope type): the features of a head are paired half against half, `(x[i], x[i + d/2])`,
/// and the pair at position p is rotated by `p · θ^(-2i/d)`.
///
/// The frequencies and the angles are computed in `Float` as `transformers` computes them
/// (`inv_freq = 1 / θ^(2i/d)`, `angle = Float(p) · inv_freq`); their cosine and sine in `Double`.
/// Each sequence of a batch has its own starting position, so sequences of different lengths
/// share one decoding step.
struct LlamaRotaryEmbedding: Sendable, Equatable, Hashable {
    /// The width of one head (even).
    let headSize: Int
    /// `1 / θ^(2i/d)` for `i < d/2`.
    let inverseFrequencies: [Float]

    init(headSize: Int, theta: Float) {
        self.headSize = headSize
        inverseFrequencies = (0..<(headSize / 2)).map { index in
            1 / powf(theta, Float(2 * index) / Float(headSize))
        }
    }

    /// The cosines and sines for a list of positions: `positions.count` rows of `d/2` each.
    func table(positions: [Int]) -> (cosines: [Float], sines: [Float]) {
        let half = headSize / 2
        var cosines = [Float](repeating: 0, count: positions.count * half)
        var sines = cosines
        for (row, position) in positions.enumerated() {
            for index in 0..<half {
                let angle = Double(Float(position) * inverseFrequencies[index])
                cosines[row * half + index] = Float(cos(angle))
                sines[row * half + index] = Float(sin(angle))
            }
        }
        return (cosines, sines)
    }

    /// Rotates in place `rows` token rows of `heads` heads each (`(rows, heads, headSize)`,
    /// contiguous), row r by row r of `table`.
    func rotate(
        _ values: UnsafeMutableBufferPointer<Float>, rows: Int, heads: Int, table: (cosines: [Float], sines: [Float])
    ) {
        let half = headSize / 2
        for row in 0..<rows {
            for head in 0..<heads {
                let base = (row * heads + head) * headSize
                for index in 0..<half {
                    let (c, s) = (table.cosines[row * half + index], table.sines[row * half + index])
                    let (a, b) = (values[base + index], values[base + half + index])
                    values[base + index] = a * c - b * s
                    values[base + half + index] = b * c + a * s
                }
            }
        }
    }
}
