// NumPy broadcasting of two operands: the shape they broadcast to, and the walk over it that the
// element-wise operations and the batched matrix multiply share. How one operand is read as the
// larger shape is `broadcastStrides(of:to:)` (Bridge/BroadcastStrides.swift).

/// The shape two shapes broadcast to under NumPy's rules (aligned on the right; a missing or
/// size-1 dimension takes the other's size), or `nil` when a pair of dimensions differs and
/// neither is 1.
func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = Swift.max(a.count, b.count)
    let paddedA = Array(repeating: 1, count: rank - a.count) + a
    let paddedB = Array(repeating: 1, count: rank - b.count) + b
    var shape: [Int] = []
    shape.reserveCapacity(rank)
    for (x, y) in zip(paddedA, paddedB) {
        if x == y || y == 1 {
            shape.append(x)
        } else if x == 1 {
            shape.append(y)
        } else {
            return nil
        }
    }
    return shape
}

/// Calls `body(index, offsetA, offsetB)` for every element of `shape` in row-major order, with
/// the offsets at which two operands read through `stridesA` and `stridesB` (as
/// `broadcastStrides(of:to:)` gives them, one per dimension of `shape`) hold that element.
func forEachBroadcastElement(
    of shape: [Int], stridesA: [Int], stridesB: [Int], _ body: (_ index: Int, _ offsetA: Int, _ offsetB: Int) -> Void
) {
    let count = shape.reduce(1, *)
    if count == 0 { return }
    let rank = shape.count
    var position = [Int](repeating: 0, count: rank)
    var offsetA = 0, offsetB = 0
    for index in 0..<count {
        body(index, offsetA, offsetB)
        // Advance the multi-index like an odometer, last axis fastest, tracking both offsets.
        var axis = rank - 1
        while axis >= 0 {
            position[axis] += 1
            offsetA += stridesA[axis]
            offsetB += stridesB[axis]
            if position[axis] < shape[axis] { break }
            offsetA -= stridesA[axis] * shape[axis]
            offsetB -= stridesB[axis] * shape[axis]
            position[axis] = 0
            axis -= 1
        }
    }
}

extension Tensor {
    /// The element-wise sum, with NumPy broadcasting: the shapes are aligned on the right, and a
    /// missing or size-1 dimension of either tensor is repeated to the other's size.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"self"`, `"other"`) unless both are
    ///   `float32`; `.shapeMismatch` (argument `"other"`, with both shapes) when the
    ///   shapes do not broadcast; `.overflow` or `.outOfMemory` for the result.
    public func adding(_ other: Tensor) throws -> Tensor {
        try combined(with: other, +)
    }

    /// The element-wise product, with NumPy broadcasting as ``adding(_:)``.
    ///
    /// - Throws: as ``adding(_:)``.
    public func multiplying(_ other: Tensor) throws -> Tensor {
        try combined(with: other, *)
    }

    /// `operation(self[i], other[i])` for every element of the broadcast shape, into a new tensor.
    private func combined(with other: Tensor, _ operation: (Float, Float) -> Float) throws(AttentionError) -> Tensor {
        try requireFloat32("self")
        try other.requireFloat32("other")
        guard let resultShape = broadcastShape(shape, other.shape),
              let stridesA = broadcastStrides(of: shape, to: resultShape),
              let stridesB = broadcastStrides(of: other.shape, to: resultShape)
        else {
            throw .shapeMismatch(
                argument: "other", expected: "a shape broadcastable with \(shape), the shape of self", actual: other.shape)
        }
        var result = try Tensor(uninitializedShape: resultShape, argument: "other")
        result.withUnsafeMutableBufferPointer { out in
            withUnsafeBufferPointer { a in
                other.withUnsafeBufferPointer { b in
                    if shape == other.shape {
                        for index in out.indices { out[index] = operation(a[index], b[index]) }
                    } else {
                        forEachBroadcastElement(of: resultShape, stridesA: stridesA, stridesB: stridesB) { index, i, j in
                            out[index] = operation(a[i], b[j])
                        }
                    }
                }
            }
        }
        return result
    }
}
