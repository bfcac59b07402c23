/// A dense, row-major array of `Float` with a shape: the value the attention functions take and
/// return.
///
/// `Tensor` is a value type with copy-on-write storage: copies share one buffer until one of them
/// is mutated, and then the mutated copy gets its own.
///
/// ```swift
/// var a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
/// let b = a            // shares a's storage
/// a[0, 1] = 20         // a copies its storage first; b still reads 2
/// print(a.shape, a.rank, a.count)   // [2, 3] 2 6
/// ```
///
/// Every initialiser validates its shape (non-negative dimensions, an element count that fits
/// in `Int`) and throws `AttentionError` instead of trapping. A rank-0 shape `[]` holds one scalar.
/// The buffer is aligned to 64 bytes.
public struct Tensor: Sendable {
    /// The size of each dimension, outermost first.
    public let shape: [Int]

    var storage: TensorStorage

    init(shape: [Int], storage: TensorStorage) {
        self.shape = shape
        self.storage = storage
    }

    /// Creates a tensor from its shape and its elements in row-major order.
    ///
    /// - Throws: `AttentionError.invalidArgument` for a negative dimension,
    ///   `.overflow` when the element count does not fit in `Int`, `.shapeMismatch` when
    ///   `scalars.count` is not the product of the dimensions, `.outOfMemory` when the storage
    ///   cannot be allocated.
    public init(shape: [Int], scalars: [Float]) throws {
        let count = try elementCount(of: shape, argument: "shape")
        guard scalars.count == count else {
            throw AttentionError.shapeMismatch(
                argument: "scalars",
                expected: "\(count) scalars for shape \(shape)",
                actual: [scalars.count])
        }
        let storage = try TensorStorage(uninitializedCount: count, argument: "shape")
        if count > 0 {
            scalars.withUnsafeBufferPointer { source in
                storage.buffer.baseAddress!.initialize(from: source.baseAddress!, count: count)
            }
        }
        self.init(shape: shape, storage: storage)
    }

    /// Creates a tensor of the given shape with every element equal to `value`.
    ///
    /// - Throws: `AttentionError.invalidArgument` for a negative dimension, `.overflow` when the
    ///   element count does not fit in `Int`, `.outOfMemory` when it cannot be allocated.
    public init(repeating value: Float, shape: [Int]) throws {
        let count = try elementCount(of: shape, argument: "shape")
        self.init(shape: shape, storage: try TensorStorage(repeating: value, count: count, argument: "shape"))
    }

    /// Creates a tensor of zeros.
    ///
    /// - Throws: as `init(repeating:shape:)`.
    public init(zeros shape: [Int]) throws {
        try self.init(repeating: 0, shape: shape)
    }

    /// Creates a tensor of ones.
    ///
    /// - Throws: as `init(repeating:shape:)`.
    public init(ones shape: [Int]) throws {
        try self.init(repeating: 1, shape: shape)
    }

    /// Creates a tensor whose elements are left for the caller (the kernels) to write.
    init(uninitializedShape shape: [Int], argument: String) throws(AttentionError) {
        let count = try elementCount(of: shape, argument: argument)
        self.init(shape: shape, storage: try TensorStorage(uninitializedCount: count, argument: argument))
    }

    /// This tensor (uniquely owned, freshly allocated) with every element set to `value`.
    func filled(with value: Float) -> Tensor {
        storage.buffer.initialize(repeating: value)
        return self
    }

    /// The number of elements: the product of the dimensions.
    public var count: Int { storage.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The elements in row-major order (a copy).
    public var scalars: [Float] { Array(storage.buffer) }

    /// The same elements with another shape of the same element count. The result shares this
    /// tensor's storage until either is mutated.
    ///
    /// One dimension may be `-1`: it is then inferred from the others.
    ///
    /// - Throws: `AttentionError.invalidArgument` for a dimension below -1, more than one -1, or
    ///   a -1 that cannot be inferred; `.shapeMismatch` when the element counts differ.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var resolved = newShape
        let inferred = newShape.indices.filter { newShape[$0] == -1 }
        if inferred.count > 1 {
            throw AttentionError.invalidArgument(
                argument: "shape", reason: "at most one dimension may be -1, got \(newShape)")
        }
        if let axis = inferred.first {
            resolved[axis] = 1
            let known = try elementCount(of: resolved, argument: "shape")
            guard known > 0, count % known == 0 else {
                throw AttentionError.invalidArgument(
                    argument: "shape",
                    reason: "cannot infer the -1 in \(newShape) for \(count) elements of shape \(shape)")
            }
            resolved[axis] = count / known
        }
        let newCount = try elementCount(of: resolved, argument: "shape")
        guard newCount == count else {
            throw AttentionError.shapeMismatch(
                argument: "shape",
                expected: "a shape of \(count) elements, like \(shape)",
                actual: resolved)
        }
        return Tensor(shape: resolved, storage: storage)
    }

    /// The row-major offset of a multi-index, with bounds checked.
    private func offset(of indices: [Int]) -> Int {
        precondition(
            indices.count == shape.count,
            "\(indices.count) indices for a tensor of rank \(shape.count) (shape \(shape))")
        var offset = 0
        for (axis, index) in indices.enumerated() {
            precondition(
                index >= 0 && index < shape[axis],
                "index \(index) out of range 0..<\(shape[axis]) on axis \(axis) of shape \(shape)")
            offset = offset &* shape[axis] &+ index
        }
        return offset
    }

    /// The element at a multi-index, one index per dimension.
    ///
    /// ```swift
    /// var t = try Tensor(zeros: [2, 3])
    /// t[1, 2] = 7
    /// print(t[1, 2])   // 7.0
    /// ```
    ///
    /// - Precondition: exactly `rank` indices, each within its dimension. (The one API that traps,
    ///   like `Array`'s subscript.)
    public subscript(indices: Int...) -> Float {
        get { storage.buffer[offset(of: indices)] }
        set {
            let offset = offset(of: indices)
            makeUnique()
            storage.buffer[offset] = newValue
        }
    }

    /// Calls `body` with the elements in row-major order, for reading.
    ///
    /// The pointer is valid only inside `body`, and is 64-byte aligned (`nil` base address when
    /// the tensor has no elements).
    public func withUnsafeBufferPointer<Result, Failure: Error>(
        _ body: (UnsafeBufferPointer<Float>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        return try body(UnsafeBufferPointer(storage.buffer))
    }

    /// Calls `body` with the elements in row-major order, for writing. Copies the storage first
    /// when another tensor shares it.
    public mutating func withUnsafeMutableBufferPointer<Result, Failure: Error>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        makeUnique()
        return try body(storage.buffer)
    }

    /// Gives this value its own storage if another value shares it.
    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            storage = TensorStorage(copying: storage)
        }
    }
}

extension Tensor: Equatable {
    /// Two tensors are equal when their shapes are equal and their elements compare equal
    /// with `Float`'s `==` (so a tensor containing NaN equals only a tensor sharing its storage,
    /// as with `Array`).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return true }
        return lhs.storage.buffer.elementsEqual(rhs.storage.buffer)
    }
}

extension Tensor: CustomStringConvertible {
    /// The shape and up to the first 16 elements.
    public var description: String {
        let shown = storage.buffer.prefix(16).map { "\($0)" }.joined(separator: ", ")
        let more = count > 16 ? ", … \(count - 16) more" : ""
        return "Tensor(shape: \(shape), scalars: [\(shown)\(more)])"
    }
}
