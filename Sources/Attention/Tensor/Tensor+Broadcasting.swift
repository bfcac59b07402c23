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

/// An element-wise operation of two `Float`s, as a type so that the loops over tensors are
/// specialised for it (no call through a closure per element).
protocol ElementwiseOperation {
    static func apply(_ a: Float, _ b: Float) -> Float
}

enum Addition: ElementwiseOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b }
}

enum Subtraction: ElementwiseOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b }
}

enum Multiplication: ElementwiseOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b }
}

enum Division: ElementwiseOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b }
}

extension Tensor {
    /// The element-wise sum, with NumPy broadcasting: the shapes are aligned on the right, and a
    /// missing or size-1 dimension of either tensor is repeated to the other's size. The same as
    /// `self + other` (``+(_:_:)-(Tensor,Tensor)``), with errors naming `"self"` and `"other"`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"self"`, `"other"`) unless both are
    ///   `float32`; `.shapeMismatch` (argument `"other"`, with both shapes) when the
    ///   shapes do not broadcast; `.overflow` or `.outOfMemory` for the result.
    public func adding(_ other: Tensor) throws -> Tensor {
        try combined(with: other, Addition.self, names: ("self", "other"))
    }

    /// The element-wise product, with NumPy broadcasting as ``adding(_:)``.
    ///
    /// - Throws: as ``adding(_:)``.
    public func multiplying(_ other: Tensor) throws -> Tensor {
        try combined(with: other, Multiplication.self, names: ("self", "other"))
    }

    /// `Operation(self[i], other[i])` for every element of the broadcast shape, into a new tensor:
    /// the one broadcasting implementation of the element-wise arithmetic. Same shapes, a one-element
    /// operand and an operand repeated as whole trailing blocks (a row, a matrix) take contiguous
    /// loops; any other broadcast walks the shape with both operands' strides.
    func combined<Operation: ElementwiseOperation>(
        with other: Tensor, _: Operation.Type, names: (String, String)
    ) throws(AttentionError) -> Tensor {
        try requireFloat32(names.0)
        try other.requireFloat32(names.1)
        guard let resultShape = broadcastShape(shape, other.shape),
              let stridesA = broadcastStrides(of: shape, to: resultShape),
              let stridesB = broadcastStrides(of: other.shape, to: resultShape)
        else {
            throw .shapeMismatch(
                argument: names.1,
                expected: "a shape broadcastable with \(shape), the shape of \(names.0)", actual: other.shape)
        }
        var result = try Tensor(uninitializedShape: resultShape, argument: names.1)
        if result.count == 0 { return result }
        result.withUnsafeMutableBufferPointer { out in
            withUnsafeBufferPointer { a in
                other.withUnsafeBufferPointer { b in
                    if shape == other.shape {
                        for index in out.indices { out[index] = Operation.apply(a[index], b[index]) }
                    } else if resultShape == shape, isTrailingBlock(other.shape, of: shape) {
                        let block = b.count
                        for start in stride(from: 0, to: out.count, by: block) {
                            for j in 0..<block { out[start + j] = Operation.apply(a[start + j], b[j]) }
                        }
                    } else if resultShape == other.shape, isTrailingBlock(shape, of: other.shape) {
                        let block = a.count
                        for start in stride(from: 0, to: out.count, by: block) {
                            for j in 0..<block { out[start + j] = Operation.apply(a[j], b[start + j]) }
                        }
                    } else {
                        forEachBroadcastElement(of: resultShape, stridesA: stridesA, stridesB: stridesB) { index, i, j in
                            out[index] = Operation.apply(a[i], b[j])
                        }
                    }
                }
            }
        }
        return result
    }

    /// `Operation(self[i], scalar)` (or `Operation(scalar, self[i])` when `scalarFirst`) for every
    /// element, into a new tensor of this shape.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`argument`) unless the tensor is `float32`;
    ///   `.outOfMemory` for the result.
    func combined<Operation: ElementwiseOperation>(
        withScalar scalar: Float, _: Operation.Type, scalarFirst: Bool, argument: String
    ) throws(AttentionError) -> Tensor {
        try requireFloat32(argument)
        var result = try Tensor(uninitializedShape: shape, argument: argument)
        result.withUnsafeMutableBufferPointer { out in
            withUnsafeBufferPointer { a in
                if scalarFirst {
                    for index in out.indices { out[index] = Operation.apply(scalar, a[index]) }
                } else {
                    for index in out.indices { out[index] = Operation.apply(a[index], scalar) }
                }
            }
        }
        return result
    }
}

/// Whether `small` (leading 1s ignored) is the trailing part of `large`, so that reading it as
/// `large` repeats its elements as whole contiguous blocks.
private func isTrailingBlock(_ small: [Int], of large: [Int]) -> Bool {
    let trimmed = small.drop { $0 == 1 }
    return trimmed.count <= large.count && large.suffix(trimmed.count).elementsEqual(trimmed)
}
