// The one broadcasting routine: how a dense, row-major array is read as a larger shape.

/// The element strides that read a dense, row-major array of `shape` as `target` under NumPy's
/// broadcasting rules (shapes aligned on the right; a missing or size-1 dimension is repeated,
/// stride 0), or `nil` when `shape` does not broadcast to `target`.
///
/// Every mask, bias and element-wise operand of the library is read through these strides, so
/// nothing is ever expanded to the full shape in memory.
func broadcastStrides(of shape: [Int], to target: [Int]) -> [Int]? {
    guard shape.count <= target.count else { return nil }
    let dense = contiguousStrides(of: shape)
    var strides = [Int](repeating: 0, count: target.count)
    let lead = target.count - shape.count
    for (index, size) in shape.enumerated() {
        let axis = lead + index
        if size == target[axis] {
            strides[axis] = size == 1 ? 0 : dense[index]
        } else if size != 1 {
            return nil
        }
    }
    return strides
}

/// Element strides over the attention scores `(B, Hq, Lq, Lk)`: how a mask or bias is read.
struct ScoreStrides: Sendable, Equatable {
    var batch = 0, head = 0, query = 0, key = 0

    /// All zero: one element read for every score.
    init() {}

    /// The strides of `shape` broadcast to `(B, Hq, Lq, Lk)`, or `nil` when it does not broadcast.
    init?(broadcasting shape: [Int], to scores: [Int]) {
        guard scores.count == 4, let s = broadcastStrides(of: shape, to: scores) else { return nil }
        (batch, head, query, key) = (s[0], s[1], s[2], s[3])
    }

    init(batch: Int, head: Int, query: Int, key: Int) {
        (self.batch, self.head, self.query, self.key) = (batch, head, query, key)
    }
}
