// Checked arithmetic on shapes, shared by `Tensor` and the attention functions.

/// The number of elements of `shape`, with every dimension checked to be non-negative and the
/// product checked for overflow. A shape with a zero dimension has no elements, whatever the others.
func elementCount(of shape: [Int], argument: String) throws(AttentionError) -> Int {
    for (axis, dimension) in shape.enumerated() where dimension < 0 {
        throw .invalidArgument(
            argument: argument,
            reason: "dimension \(axis) of \(shape) is \(dimension); dimensions must be non-negative")
    }
    if shape.contains(0) { return 0 }
    var count = 1
    for dimension in shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
        if overflow { throw .overflow(argument: argument) }
        count = product
    }
    return count
}

/// The element count of `shape` (argument `"shape"`), checked against the `valueCount` values
/// given with it as `argument`: `.shapeMismatch` naming `argument` ("`N` `noun` for shape …")
/// when they differ, and the errors of ``elementCount(of:argument:)``.
func elementCount(of shape: [Int], matching valueCount: Int, argument: String, noun: String) throws(AttentionError) -> Int {
    let count = try elementCount(of: shape, argument: "shape")
    guard valueCount == count else {
        throw .shapeMismatch(argument: argument, expected: "\(count) \(noun) for shape \(shape)", actual: [valueCount])
    }
    return count
}

/// `a * b`, or `AttentionError.overflow(argument:)`.
func checkedProduct(_ a: Int, _ b: Int, argument: String) throws(AttentionError) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    if overflow { throw .overflow(argument: argument) }
    return product
}

/// The row-major (C-order) element strides of a shape: the last dimension has stride 1.
func contiguousStrides(of shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var stride = 1
    for axis in shape.indices.reversed() {
        strides[axis] = stride
        stride &*= Swift.max(shape[axis], 1)
    }
    return strides
}
