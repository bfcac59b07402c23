/// A dense, row-major array of `Bool` with a shape: an explicit attention mask in which `true`
/// means "may attend" and `false` means "masked".
///
/// One byte per element, passed to the kernels without conversion. Broadcast against
/// `(B, Hq, Lq, Lk)` by ``AttentionMask``.
///
/// ```swift
/// // A causal mask built by hand (AttentionMask(causal: .topLeft) does the same without memory).
/// let tril = try BooleanMask(shape: [4, 4]) { index in index[1] <= index[0] }
/// let mask = AttentionMask(booleanMask: tril)
/// ```
public struct BooleanMask: Sendable, Equatable {
    /// The size of each dimension, outermost first.
    public let shape: [Int]

    /// The elements in row-major order.
    public let values: [Bool]

    /// Creates a mask from its shape and its elements in row-major order.
    ///
    /// - Throws: `AttentionError.invalidArgument` for a negative dimension, `.overflow` when the
    ///   element count does not fit in `Int`, `.shapeMismatch` when `values.count` is not the
    ///   product of the dimensions.
    public init(shape: [Int], values: [Bool]) throws {
        let count = try elementCount(of: shape, argument: "shape")
        guard values.count == count else {
            throw AttentionError.shapeMismatch(
                argument: "values", expected: "\(count) values for shape \(shape)", actual: [values.count])
        }
        self.shape = shape
        self.values = values
    }

    /// Creates a mask by evaluating `attends` at every multi-index, in row-major order.
    ///
    /// - Throws: `AttentionError.invalidArgument` for a negative dimension, `.overflow` when the
    ///   element count does not fit in `Int`, `.outOfMemory` when the values cannot be allocated.
    public init(shape: [Int], where attends: ([Int]) -> Bool) throws {
        let count = try elementCount(of: shape, argument: "shape")
        try checkAllocatable(count, of: Bool.self, argument: "shape")
        var values = [Bool]()
        values.reserveCapacity(count)
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            values.append(attends(index))
            // Advance the multi-index like an odometer, last axis fastest.
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        self.shape = shape
        self.values = values
    }

    /// Creates a mask from a tensor of any dtype: nonzero elements (NaN included) attend, zeros
    /// (either sign) are masked.
    public init(_ tensor: Tensor) {
        shape = tensor.shape
        values = tensor.withUnsafeBufferPointer { $0.map { $0 != 0 } }
    }

    /// The number of elements.
    public var count: Int { values.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }
}
