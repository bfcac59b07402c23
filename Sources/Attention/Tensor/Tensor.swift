/// A dense, row-major array of numbers with a shape and an element type (``DType``: `Float`,
/// IEEE half precision or bfloat16): the value the attention functions take and return.
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
/// The basics read as in NumPy or MLX, and throw instead of trapping: arithmetic with broadcasting
/// (`try a + b * 2`), reductions (`x.sum(alongAxis: -1)`, ``argmax(alongAxis:keepingDimensions:)``),
/// element-wise functions (`try exp(x)`), rows (`try x[0]`, `try x[2..<4]`, copies), literals
/// (`let v: Tensor = [1, 2, 3]`, ``init(_:)``, ``init(arange:dtype:)``, ``init(eye:columns:dtype:)``)
/// and a nested ``description``. They compute on `float32` tensors and throw
/// `AttentionError.unsupportedDType` for half precision; moving elements (rows, slices,
/// transposes, printing) works on every dtype.
///
/// Every initialiser validates its shape (non-negative dimensions, an element count that fits
/// in `Int`) and throws `AttentionError` instead of trapping. A rank-0 shape `[]` holds one scalar.
/// The buffer is aligned to 64 bytes.
///
/// Tensors are `float32` unless made otherwise (a `dtype:` argument, ``converted(to:)``,
/// ``init(shape:bitPatterns:dtype:)``, a half-precision checkpoint). The `Float` accessors work on
/// every dtype: reading widens half-precision elements exactly, writing rounds to nearest even.
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
        let count = try elementCount(of: shape, matching: scalars.count, argument: "scalars", noun: "scalars")
        let storage = try TensorStorage(uninitializedCount: count, argument: "shape")
        if count > 0 {
            scalars.withUnsafeBufferPointer { source in
                storage.buffer.baseAddress!.initialize(from: source.baseAddress!, count: count)
            }
        }
        self.init(shape: shape, storage: storage)
    }

    /// Creates a tensor of the given shape with every element equal to `value` (rounded to
    /// nearest even for a half-precision `dtype`).
    ///
    /// - Throws: `AttentionError.invalidArgument` for a negative dimension, `.overflow` when the
    ///   element count does not fit in `Int`, `.outOfMemory` when it cannot be allocated.
    public init(repeating value: Float, shape: [Int], dtype: DType = .float32) throws {
        let count = try elementCount(of: shape, argument: "shape")
        self.init(
            shape: shape, storage: try TensorStorage(repeating: value, count: count, dtype: dtype, argument: "shape"))
    }

    /// Creates a tensor of zeros.
    ///
    /// - Throws: as `init(repeating:shape:dtype:)`.
    public init(zeros shape: [Int], dtype: DType = .float32) throws {
        try self.init(repeating: 0, shape: shape, dtype: dtype)
    }

    /// Creates a tensor of ones.
    ///
    /// - Throws: as `init(repeating:shape:dtype:)`.
    public init(ones shape: [Int], dtype: DType = .float32) throws {
        try self.init(repeating: 1, shape: shape, dtype: dtype)
    }

    /// Creates a tensor whose elements are left for the caller (the kernels) to write.
    init(uninitializedShape shape: [Int], dtype: DType = .float32, argument: String) throws(AttentionError) {
        let count = try elementCount(of: shape, argument: argument)
        self.init(shape: shape, storage: try TensorStorage(uninitializedCount: count, dtype: dtype, argument: argument))
    }

    /// This tensor (uniquely owned, freshly allocated) with every element set to `value`.
    func filled(with value: Float) -> Tensor {
        storage.fill(with: value)
        return self
    }

    /// The number of elements: the product of the dimensions.
    public var count: Int { storage.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The elements in row-major order as `Float` values (a copy; half-precision elements are
    /// widened, exactly).
    public var scalars: [Float] {
        switch dtype {
        case .float32: Array(storage.buffer)
        case .float16, .bfloat16: storage.bitPatterns.map(dtype.value(ofBitPattern:))
        }
    }

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
    /// On a half-precision tensor, reading widens the element exactly and writing rounds the new
    /// value to nearest even.
    ///
    /// - Precondition: exactly `rank` indices, each within its dimension. (The one API that traps,
    ///   like `Array`'s subscript.)
    public subscript(indices: Int...) -> Float {
        get {
            let offset = offset(of: indices)
            switch dtype {
            case .float32: return storage.buffer[offset]
            case .float16, .bfloat16: return dtype.value(ofBitPattern: storage.bitPatterns[offset])
            }
        }
        set {
            let offset = offset(of: indices)
            makeUnique()
            switch dtype {
            case .float32: storage.buffer[offset] = newValue
            case .float16, .bfloat16: storage.bitPatterns[offset] = dtype.bitPattern(from: newValue)
            }
        }
    }

    /// Calls `body` with the elements in row-major order as `Float`s, for reading.
    ///
    /// For a `float32` tensor the pointer is to its storage, 64-byte aligned; for a half-precision
    /// tensor it is to a temporary widened copy (use ``withUnsafeRawBufferPointer(_:)`` for the
    /// stored bits). It is valid only inside `body` (`nil` base address when the tensor has no
    /// elements).
    public func withUnsafeBufferPointer<Result, Failure: Error>(
        _ body: (UnsafeBufferPointer<Float>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        if dtype == .float32 {
            return try withExtendedLifetime(storage) { () throws(Failure) -> Result in
                try body(UnsafeBufferPointer(storage.buffer))
            }
        }
        let widened = scalars
        return try widened.withUnsafeBufferPointer { (buffer) throws(Failure) -> Result in try body(buffer) }
    }

    /// Calls `body` with the elements in row-major order as `Float`s, for writing. Copies the
    /// storage first when another tensor shares it.
    ///
    /// For a half-precision tensor, `body` gets a widened copy of the elements, which are then
    /// rounded back to the tensor's dtype (to nearest even) after `body` returns or throws.
    public mutating func withUnsafeMutableBufferPointer<Result, Failure: Error>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        makeUnique()
        if dtype == .float32 {
            return try withExtendedLifetime(storage) { () throws(Failure) -> Result in try body(storage.buffer) }
        }
        var widened = scalars
        let target = storage, dtype = self.dtype
        defer {
            let patterns = target.bitPatterns
            for index in widened.indices { patterns[index] = dtype.bitPattern(from: widened[index]) }
        }
        return try widened.withUnsafeMutableBufferPointer { (buffer) throws(Failure) -> Result in try body(buffer) }
    }

    /// Gives this value its own storage if another value shares it.
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            storage = TensorStorage(copying: storage)
        }
    }
}

extension Tensor: Equatable {
    /// Two tensors are equal when their dtypes and shapes are equal and their elements compare
    /// equal as numbers with `Float`'s `==` (so a tensor containing NaN equals only a tensor
    /// sharing its storage, as with `Array`, and `-0` equals `0`).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.dtype == rhs.dtype, lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return true }
        switch lhs.dtype {
        case .float32:
            return lhs.storage.buffer.elementsEqual(rhs.storage.buffer)
        case .float16, .bfloat16:
            let dtype = lhs.dtype
            return lhs.storage.bitPatterns.elementsEqual(rhs.storage.bitPatterns) {
                dtype.value(ofBitPattern: $0) == dtype.value(ofBitPattern: $1)
            }
        }
    }
}
