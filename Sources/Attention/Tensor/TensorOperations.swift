// Small element-wise and layout operations that the modules need between kernel calls: scaling,
// head transposes, splitting packed projections and joining heads (the broadcasting sum and
// product are in Tensor+Broadcasting.swift). Plain loops over the buffers; every result is a new,
// contiguous tensor.

extension Tensor {
    /// Every element multiplied by `factor`.
    ///
    /// - Throws: `AttentionError.outOfMemory` when the result cannot be allocated.
    public func scaled(by factor: Float) throws -> Tensor {
        var result = try Tensor(uninitializedShape: shape, argument: "self")
        result.withUnsafeMutableBufferPointer { out in
            withUnsafeBufferPointer { a in
                for index in out.indices { out[index] = a[index] * factor }
            }
        }
        return result
    }

    /// The axis `axis` of this tensor, with negative values counted from the end (-1 is the last).
    func normalizedAxis(_ axis: Int, argument: String, rank: Int? = nil) throws(AttentionError) -> Int {
        let rank = rank ?? self.rank
        guard axis >= -rank && axis < rank else {
            throw .invalidArgument(
                argument: argument, reason: "must be in \(-rank)..<\(rank) for a tensor of shape \(shape), got \(axis)")
        }
        return axis < 0 ? axis + rank : axis
    }

    /// A copy with the last two dimensions swapped: `(..., m, n)` → `(..., n, m)`.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (argument `"self"`) for a rank below 2.
    public func transposed() throws -> Tensor {
        guard rank >= 2 else {
            throw AttentionError.shapeMismatch(argument: "self", expected: "rank 2 or more", actual: shape)
        }
        var axes = Array(0..<rank)
        axes.swapAt(rank - 2, rank - 1)
        return try permuted(axes)
    }

    /// A copy with the dimensions reordered: dimension `i` of the result is dimension `axes[i]`
    /// of this tensor (NumPy's `transpose(axes)`, PyTorch's `permute`).
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"axes"`) unless `axes` is a
    ///   permutation of `0..<rank` (negative axes count from the end).
    public func permuted(_ axes: [Int]) throws -> Tensor {
        guard axes.count == rank else {
            throw AttentionError.invalidArgument(
                argument: "axes", reason: "must list each of the \(rank) axes of shape \(shape) once, got \(axes)")
        }
        var order: [Int] = []
        for axis in axes {
            order.append(try normalizedAxis(axis, argument: "axes"))
        }
        guard Set(order).count == rank else {
            throw AttentionError.invalidArgument(
                argument: "axes", reason: "must list each of the \(rank) axes of shape \(shape) once, got \(axes)")
        }
        let newShape = order.map { shape[$0] }
        var result = try Tensor(uninitializedShape: newShape, argument: "self")
        if count == 0 { return result }
        let sourceStrides = contiguousStrides(of: shape)
        let strides = order.map { sourceStrides[$0] }  // source stride of each result dimension
        result.withUnsafeMutableBufferPointer { out in
            withUnsafeBufferPointer { source in
                var index = [Int](repeating: 0, count: rank)
                var sourceOffset = 0
                for position in out.indices {
                    out[position] = source[sourceOffset]
                    // Advance the result's multi-index like an odometer, tracking the source offset.
                    var axis = rank - 1
                    while axis >= 0 {
                        index[axis] += 1
                        sourceOffset += strides[axis]
                        if index[axis] < newShape[axis] { break }
                        sourceOffset -= strides[axis] * newShape[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return result
    }

    /// A copy of the elements with indices in `range` along `axis` (the first by default):
    /// `x[range]`, `x[:, range]`, ... in NumPy's notation.
    ///
    /// ```swift
    /// // torch's packed in_proj_weight (3E, E): the query rows
    /// let queryWeight = try inProjWeight.sliced(0..<embedSize)
    /// let lastFeatures = try x.sliced(4..<8, axis: -1)
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"axis"`) for an axis out of range (or a
    ///   scalar), (`"range"`) for a range outside `0...shape[axis]`.
    public func sliced(_ range: Range<Int>, axis: Int = 0) throws -> Tensor {
        let axis = try normalizedAxis(axis, argument: "axis")
        guard range.lowerBound >= 0, range.upperBound <= shape[axis] else {
            throw AttentionError.invalidArgument(
                argument: "range", reason: "must lie in 0..<\(shape[axis]) along axis \(axis) of shape \(shape), got \(range)")
        }
        var newShape = shape
        newShape[axis] = range.count
        var result = try Tensor(uninitializedShape: newShape, argument: "self")
        if result.count == 0 { return result }
        let inner = try elementCount(of: Array(shape[(axis + 1)...]), argument: "self")
        let outer = try elementCount(of: Array(shape[..<axis]), argument: "self")
        let sourceBlock = shape[axis] * inner, block = range.count * inner
        result.withUnsafeMutableBufferPointer { out in
            withUnsafeBufferPointer { source in
                for o in 0..<outer {
                    let from = source.baseAddress! + o * sourceBlock + range.lowerBound * inner
                    (out.baseAddress! + o * block).update(from: from, count: block)
                }
            }
        }
        return result
    }

    /// The tensors joined along `axis` (the last by default); every other dimension must agree.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"tensors"`) for an empty list or scalars,
    ///   (`"axis"`) for an axis out of range; `.shapeMismatch` (`"tensors[i]"`) when a tensor's
    ///   rank or other dimensions differ from the first's; `.overflow` for a joined size beyond `Int`.
    public static func concatenated(_ tensors: [Tensor], axis: Int = -1) throws -> Tensor {
        guard let first = tensors.first, first.rank >= 1 else {
            throw AttentionError.invalidArgument(
                argument: "tensors", reason: "must hold at least one tensor of rank 1 or more")
        }
        let axis = try first.normalizedAxis(axis, argument: "axis")
        var joined = 0
        for (index, tensor) in tensors.enumerated() {
            var expected = first.shape
            expected[axis] = tensor.rank == first.rank ? tensor.shape[axis] : -1
            guard tensor.shape == expected else {
                var pattern = first.shape.map(String.init)
                pattern[axis] = "_"
                throw AttentionError.shapeMismatch(
                    argument: "tensors[\(index)]",
                    expected: "[\(pattern.joined(separator: ", "))], the shape of tensors[0] except along axis \(axis)",
                    actual: tensor.shape)
            }
            let (sum, overflow) = joined.addingReportingOverflow(tensor.shape[axis])
            if overflow { throw AttentionError.overflow(argument: "tensors") }
            joined = sum
        }
        var newShape = first.shape
        newShape[axis] = joined
        var result = try Tensor(uninitializedShape: newShape, argument: "tensors")
        if result.count == 0 { return result }
        let inner = try elementCount(of: Array(first.shape[(axis + 1)...]), argument: "tensors")
        let outer = try elementCount(of: Array(first.shape[..<axis]), argument: "tensors")
        let resultBlock = joined * inner
        result.withUnsafeMutableBufferPointer { out in
            var start = 0
            for tensor in tensors {
                let block = tensor.shape[axis] * inner
                if block > 0 {
                    tensor.withUnsafeBufferPointer { source in
                        for o in 0..<outer {
                            (out.baseAddress! + o * resultBlock + start).update(from: source.baseAddress! + o * block, count: block)
                        }
                    }
                }
                start += block
            }
        }
        return result
    }
}
