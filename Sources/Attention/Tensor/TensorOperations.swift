// Small element-wise and layout operations that the modules need between kernel calls: scaling,
// head transposes, splitting packed projections and joining heads (the broadcasting sum and
// product are in Tensor+Broadcasting.swift). Plain loops over the buffers; every result is a new,
// contiguous tensor. The layout operations (transposes, permutations, slices, concatenation) move
// elements of any dtype as they are; the arithmetic needs float32.

extension Tensor {
    /// Every element multiplied by `factor`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"self"`) unless the tensor is `float32`;
    ///   `.outOfMemory` when the result cannot be allocated.
    public func scaled(by factor: Float) throws -> Tensor {
        try combined(withScalar: factor, Multiplication.self, scalarFirst: false, argument: "self")
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

    /// A copy with the last two dimensions swapped: `(..., m, n)` → `(..., n, m)`, in the
    /// tensor's dtype.
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
    /// of this tensor (NumPy's `transpose(axes)`, PyTorch's `permute`), in the tensor's dtype.
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
        let result = try Tensor(uninitializedShape: newShape, dtype: dtype, argument: "self")
        if count == 0 { return result }
        let sourceStrides = contiguousStrides(of: shape)
        let strides = order.map { sourceStrides[$0] }  // source stride of each result dimension
        withExtendedLifetime((self, result)) {
            switch dtype {
            case .float32: gather(from: storage.buffer, into: result.storage.buffer, shape: newShape, strides: strides)
            case .float16, .bfloat16:
                gather(from: storage.bitPatterns, into: result.storage.bitPatterns, shape: newShape, strides: strides)
            }
        }
        return result
    }

    /// Writes `out` (of `shape`, row-major) from `source` read with element `strides` per
    /// dimension of `shape`.
    private func gather<Element>(
        from source: UnsafeMutableBufferPointer<Element>, into out: UnsafeMutableBufferPointer<Element>,
        shape: [Int], strides: [Int]
    ) {
        var index = [Int](repeating: 0, count: shape.count)
        var sourceOffset = 0
        for position in out.indices {
            out[position] = source[sourceOffset]
            // Advance the result's multi-index like an odometer, tracking the source offset.
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                sourceOffset += strides[axis]
                if index[axis] < shape[axis] { break }
                sourceOffset -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// A copy of the elements with indices in `range` along `axis` (the first by default):
    /// `x[range]`, `x[:, range]`, ... in NumPy's notation, in the tensor's dtype.
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
        let result = try Tensor(uninitializedShape: newShape, dtype: dtype, argument: "self")
        if result.count == 0 { return result }
        let inner = try elementCount(of: Array(shape[(axis + 1)...]), argument: "self")
        let outer = try elementCount(of: Array(shape[..<axis]), argument: "self")
        let size = dtype.byteSize
        let sourceBlock = shape[axis] * inner * size, block = range.count * inner * size
        withExtendedLifetime((self, result)) {
            let source = storage.bytes.baseAddress!, out = result.storage.bytes.baseAddress!
            for o in 0..<outer {
                let from = source + o * sourceBlock + range.lowerBound * inner * size
                (out + o * block).copyMemory(from: from, byteCount: block)
            }
        }
        return result
    }

    /// The tensors joined along `axis` (the last by default); every other dimension must agree,
    /// and so must the dtypes (the result has theirs).
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"tensors[i]"`) for a dtype other than the
    ///   first tensor's; `.invalidArgument` (`"tensors"`) for an empty list or scalars,
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
            guard tensor.dtype == first.dtype else {
                throw AttentionError.unsupportedDType(
                    argument: "tensors[\(index)]", dtype: tensor.dtype,
                    reason: "every tensor must have the dtype of tensors[0], \(first.dtype); convert explicitly")
            }
            let (sum, overflow) = joined.addingReportingOverflow(tensor.shape[axis])
            if overflow { throw AttentionError.overflow(argument: "tensors") }
            joined = sum
        }
        var newShape = first.shape
        newShape[axis] = joined
        let result = try Tensor(uninitializedShape: newShape, dtype: first.dtype, argument: "tensors")
        if result.count == 0 { return result }
        let inner = try elementCount(of: Array(first.shape[(axis + 1)...]), argument: "tensors")
        let outer = try elementCount(of: Array(first.shape[..<axis]), argument: "tensors")
        let size = first.dtype.byteSize
        let resultBlock = joined * inner * size
        withExtendedLifetime((tensors, result)) {
            let out = result.storage.bytes.baseAddress!
            var start = 0
            for tensor in tensors {
                let block = tensor.shape[axis] * inner * size
                if block > 0 {
                    let source = tensor.storage.bytes.baseAddress!
                    for o in 0..<outer {
                        (out + o * resultBlock + start).copyMemory(from: source + o * block, byteCount: block)
                    }
                }
                start += block
            }
        }
        return result
    }
}
