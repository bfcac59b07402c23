// Reductions: sum, mean, max, min and the indices of the extrema, along one axis or over all
// axes. A reduction along the last axis (and over all axes, the flattened tensor as one row) runs
// in the C kernel attn_reduce_rows: sums in double, rounded once, and vectorised extrema; along
// another axis a loop over the strides here (the same arithmetic: double sums, first-occurrence
// extrema), which reads the tensor once in order and needs no transposed copy.
//
// Semantics are NumPy's: NaN propagates (a NaN in a line makes its sum, mean, max and min NaN, and
// argmax/argmin give the index of the first NaN), ties give the first index, the sum of no
// elements is 0, their mean NaN, and their max, min, argmax or argmin an error.

extension Tensor {
    /// The sum of the elements along `axis`, or of every element when `axis` is `nil`, accumulated
    /// in `Double` and rounded to `Float` once.
    ///
    /// ```swift
    /// let x = try Tensor([[1, 2, 3], [4, 5, 6]])
    /// print(try x.sum().scalars)                                  // [21.0]
    /// print(try x.sum(alongAxis: 0).shape)                        // [3]
    /// print(try x.sum(alongAxis: -1, keepingDimensions: true).shape)  // [2, 1]
    /// ```
    ///
    /// - Parameters:
    ///   - axis: the axis to sum over, negative values counting from the end; `nil`: all of them.
    ///   - keepingDimensions: keep each reduced axis with size 1 (so the result broadcasts
    ///     against `self`), instead of removing it.
    /// - Returns: a `float32` tensor; of shape `[]` for all axes without `keepingDimensions`.
    /// - Throws: `AttentionError.unsupportedDType` (`"self"`) unless the tensor is `float32`;
    ///   `.invalidArgument` (`"axis"`) for an axis outside `-rank..<rank`; `.outOfMemory` for the result.
    public func sum(alongAxis axis: Int? = nil, keepingDimensions: Bool = false) throws -> Tensor {
        try reducedValues(.sum, axis: axis, keepingDimensions: keepingDimensions)
    }

    /// The mean of the elements along `axis`, or of every element when `axis` is `nil` (the `Double`
    /// sum divided by the count, rounded once). The mean of no elements is NaN, as in NumPy.
    ///
    /// - Parameters: as ``sum(alongAxis:keepingDimensions:)``.
    /// - Throws: as ``sum(alongAxis:keepingDimensions:)``.
    public func mean(alongAxis axis: Int? = nil, keepingDimensions: Bool = false) throws -> Tensor {
        try reducedValues(.mean, axis: axis, keepingDimensions: keepingDimensions)
    }

    /// The largest element along `axis`, or of the whole tensor when `axis` is `nil`. NaN
    /// propagates: a line holding a NaN has the maximum NaN (NumPy's `max`, not `nanmax`).
    ///
    /// - Parameters: as ``sum(alongAxis:keepingDimensions:)``.
    /// - Throws: as ``sum(alongAxis:keepingDimensions:)``, and `.invalidArgument` (`"axis"`) when the
    ///   reduced axis has length 0 (or, for all axes, the tensor has no elements).
    public func max(alongAxis axis: Int? = nil, keepingDimensions: Bool = false) throws -> Tensor {
        try reducedValues(.max, axis: axis, keepingDimensions: keepingDimensions)
    }

    /// The smallest element along `axis`, or of the whole tensor when `axis` is `nil`; NaN
    /// propagates as in ``max(alongAxis:keepingDimensions:)``.
    ///
    /// - Parameters: as ``sum(alongAxis:keepingDimensions:)``.
    /// - Throws: as ``max(alongAxis:keepingDimensions:)``.
    public func min(alongAxis axis: Int? = nil, keepingDimensions: Bool = false) throws -> Tensor {
        try reducedValues(.min, axis: axis, keepingDimensions: keepingDimensions)
    }

    /// The index of the largest element along `axis` (the first of equal ones, or of the first NaN),
    /// or, when `axis` is `nil`, its row-major index in the whole tensor: NumPy's `argmax`.
    ///
    /// The indices are `Int`s, exact for every size, in an ``IndexArray`` of the shape
    /// ``max(alongAxis:keepingDimensions:)`` would have.
    ///
    /// - Parameters: as ``sum(alongAxis:keepingDimensions:)``.
    /// - Throws: as ``max(alongAxis:keepingDimensions:)``.
    public func argmax(alongAxis axis: Int? = nil, keepingDimensions: Bool = false) throws -> IndexArray {
        try reducedIndices(.max, axis: axis, keepingDimensions: keepingDimensions)
    }

    /// The index of the smallest element along `axis` (the first of equal ones, or of the first
    /// NaN), or its row-major index in the whole tensor when `axis` is `nil`: NumPy's `argmin`.
    ///
    /// - Parameters: as ``sum(alongAxis:keepingDimensions:)``.
    /// - Throws: as ``max(alongAxis:keepingDimensions:)``.
    public func argmin(alongAxis axis: Int? = nil, keepingDimensions: Bool = false) throws -> IndexArray {
        try reducedIndices(.min, axis: axis, keepingDimensions: keepingDimensions)
    }
}

extension Tensor {
    /// The sum of the squares of a `float32` tensor's elements, in double, eight lanes at a time:
    /// finite exactly when every element is (a finite float's square cannot overflow a double),
    /// which is how the optimisers and the gradient norm find a NaN or an infinity in one pass.
    var squaredNorm: Double {
        withUnsafeBufferPointer { values in
            guard let base = values.baseAddress else { return 0 }
            let raw = UnsafeRawPointer(base)
            var lanes = SIMD8<Double>()
            var index = 0
            while index + 8 <= values.count {
                let v = SIMD8<Double>(raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self))
                lanes += v * v
                index += 8
            }
            var total = lanes.sum()
            for value in values[index...] { total += Double(value) * Double(value) }
            return total
        }
    }
}
