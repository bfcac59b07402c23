extension Tensor {
    /// How a tensor stores its elements: `Float`, IEEE half precision or bfloat16.
    ///
    /// Every tensor has one (``Tensor/dtype``); the initialisers make `float32` tensors unless
    /// given a `dtype:`. Half-precision tensors hold 16-bit patterns, read by the kernels in
    /// place: attention takes any dtype for its query, keys, values and output, and the matrix
    /// multiplies (``Linear``, the attention modules' projections, ``matmul(_:_:transposingA:transposingB:products:)``)
    /// take half-precision weights. Everything else needs `float32` and throws
    /// ``AttentionError/unsupportedDType(argument:dtype:reason:)`` otherwise; nothing is widened
    /// silently. ``Tensor/converted(to:)`` converts explicitly.
    ///
    /// ```swift
    /// let weight = try Tensor(randomNormal: [64, 64], using: &rng).converted(to: .bfloat16)
    /// print(weight.dtype, weight.dtype.byteSize)   // bfloat16 2
    /// ```
    public enum DType: Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// IEEE 754 single precision, `Float`: the default.
        case float32
        /// IEEE 754 half precision (binary16, `Float16`, `torch.float16`): 5 exponent and 10
        /// fraction bits, largest finite value 65504.
        case float16
        /// bfloat16 (``BFloat16``, `torch.bfloat16`): the upper 16 bits of a `Float`, so its range
        /// with 7 fraction bits.
        case bfloat16

        /// The size of one element in bytes: 4, 2, 2.
        public var byteSize: Int {
            switch self {
            case .float32: 4
            case .float16, .bfloat16: 2
            }
        }

        /// The name used in messages: `"float32"`, `"float16"`, `"bfloat16"`.
        public var description: String {
            switch self {
            case .float32: "float32"
            case .float16: "float16"
            case .bfloat16: "bfloat16"
            }
        }

        /// The 16-bit pattern nearest to `value` (ties to even), as `attn_convert` rounds.
        /// - Precondition: a 16-bit type.
        func bitPattern(from value: Float) -> UInt16 {
            switch self {
            case .float16: halfBits(from: value)
            case .bfloat16: bfloat16Bits(from: value)
            case .float32: preconditionFailure("float32 has no 16-bit pattern")
            }
        }

        /// The `Float` a 16-bit pattern stands for (exact), as `attn_convert` widens.
        /// - Precondition: a 16-bit type.
        func value(ofBitPattern bits: UInt16) -> Float {
            switch self {
            case .float16: floatFromHalfBits(bits)
            case .bfloat16: floatFromBFloat16Bits(bits)
            case .float32: preconditionFailure("float32 has no 16-bit pattern")
            }
        }
    }

    /// How this tensor stores its elements.
    public var dtype: DType { storage.dtype }

    /// This tensor with its elements converted to `dtype`: widened exactly to `float32`, rounded
    /// to nearest even to `float16` or `bfloat16` (NaN stays NaN, infinities stay infinite,
    /// subnormals are kept, values past the largest finite one become infinity), bit for bit as
    /// the kernels convert (`attn_convert`). Converting to the tensor's own dtype returns it
    /// unchanged (sharing its storage).
    ///
    /// ```swift
    /// let x = try Tensor(shape: [3], scalars: [1, 1.00390625, 70000])
    /// print(try x.converted(to: .float16).scalars)    // [1.0, 1.00390625, inf]
    /// print(try x.converted(to: .bfloat16).scalars)   // [1.0, 1.0, 70144.0]
    /// ```
    ///
    /// - Throws: `AttentionError.outOfMemory` when the result cannot be allocated.
    public func converted(to dtype: DType) throws -> Tensor {
        try converting(to: dtype, argument: "tensor")
    }

    /// ``converted(to:)`` with a typed error naming `argument`.
    func converting(to dtype: DType, argument: String) throws(AttentionError) -> Tensor {
        if dtype == self.dtype { return self }
        let result = Tensor(
            shape: shape, storage: try TensorStorage(uninitializedCount: count, dtype: dtype, argument: argument))
        if count > 0 {
            try withExtendedLifetime(self) { () throws(AttentionError) in
                try convertElements(
                    from: UnsafeRawPointer(storage.bytes.baseAddress!), self.dtype,
                    to: result.storage.bytes.baseAddress!, dtype, count: count)
            }
        }
        return result
    }

    /// Creates a half-precision tensor from the 16-bit patterns of its elements in row-major
    /// order: IEEE binary16 patterns (`Float16.bitPattern`, NumPy's `float16` viewed as `uint16`)
    /// for `.float16`, bfloat16 patterns (the upper half of a `Float`'s) for `.bfloat16`. The bits
    /// are stored as they are, NaN payloads included.
    ///
    /// ```swift
    /// let t = try Tensor(shape: [2], bitPatterns: [0x3F80, 0xC000], dtype: .bfloat16)
    /// print(t.scalars)   // [1.0, -2.0]
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"dtype"`) for `.float32`, and the
    ///   errors of ``init(shape:scalars:)`` for the shape and count.
    public init(shape: [Int], bitPatterns: [UInt16], dtype: DType) throws {
        guard dtype.byteSize == 2 else {
            throw AttentionError.invalidArgument(
                argument: "dtype", reason: "bit patterns of 16 bits need float16 or bfloat16, got \(dtype)")
        }
        let count = try elementCount(of: shape, matching: bitPatterns.count, argument: "bitPatterns", noun: "bit patterns")
        let storage = try TensorStorage(uninitializedCount: count, dtype: dtype, argument: "shape")
        if count > 0 {
            bitPatterns.withUnsafeBufferPointer { source in
                storage.bitPatterns.baseAddress!.initialize(from: source.baseAddress!, count: count)
            }
        }
        self.init(shape: shape, storage: storage)
    }

    /// The 16-bit patterns of a `float16` or `bfloat16` tensor's elements in row-major order (a
    /// copy), exactly as stored; `nil` for a `float32` tensor (whose patterns are
    /// `scalars.map(\.bitPattern)`).
    public var bitPatterns: [UInt16]? {
        dtype == .float32 ? nil : Array(storage.bitPatterns)
    }

    /// Creates a `bfloat16` tensor from its elements in row-major order.
    ///
    /// - Throws: as ``init(shape:scalars:)``.
    public init(shape: [Int], bfloat16Scalars scalars: [BFloat16]) throws {
        try self.init(shape: shape, bitPatterns: scalars.map(\.bitPattern), dtype: .bfloat16)
    }

    /// The elements in row-major order as ``BFloat16`` values (a copy): exact for a `bfloat16`
    /// tensor, rounded to nearest even from the others (as ``converted(to:)`` rounds).
    public var bfloat16Scalars: [BFloat16] {
        bitPatterns(as: .bfloat16).map(BFloat16.init(bitPattern:))
    }

    /// The elements' 16-bit patterns in `dtype` (a 16-bit type): as stored, or converted one by
    /// one with the kernels' rounding.
    func bitPatterns(as dtype: DType) -> [UInt16] {
        switch self.dtype {
        case dtype: return Array(storage.bitPatterns)
        case .float32: return storage.buffer.map(dtype.bitPattern(from:))
        default: return storage.bitPatterns.map { dtype.bitPattern(from: self.dtype.value(ofBitPattern: $0)) }
        }
    }

    /// Calls `body` with the elements' bytes in row-major order, for reading: `count ×
    /// dtype.byteSize` bytes, each element in the platform's byte order (`Float`, or the 16-bit
    /// pattern as `UInt16`). The pointer is valid only inside `body`, and is 64-byte aligned
    /// (`nil` base address when the tensor has no elements).
    public func withUnsafeRawBufferPointer<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withExtendedLifetime(storage) { () throws(Failure) -> Result in
            try body(UnsafeRawBufferPointer(storage.bytes))
        }
    }

    /// Calls `body` with the elements' bytes in row-major order, for writing (laid out as
    /// ``withUnsafeRawBufferPointer(_:)`` describes). Copies the storage first when another tensor
    /// shares it.
    public mutating func withUnsafeMutableRawBufferPointer<Result, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        makeUnique()
        return try withExtendedLifetime(storage) { () throws(Failure) -> Result in
            try body(storage.bytes)
        }
    }

    /// Throws unless this tensor is `float32`: the check every operation without
    /// half-precision support makes before touching the elements.
    ///
    /// - Throws: `AttentionError.unsupportedDType` naming `argument`, with `reason` (by default,
    ///   that the operation computes on `float32` only).
    func requireFloat32(
        _ argument: @autoclosure () -> String, reason: @autoclosure () -> String = defaultFloat32Reason
    ) throws(AttentionError) {
        if dtype != .float32 {
            throw .unsupportedDType(argument: argument(), dtype: dtype, reason: reason())
        }
    }
}

/// Throws unless every given activation is `float32`: a module's inputs, which feed its
/// projections (matrix multiplies take `float32` activations; only their weights may be half
/// precision).
///
/// - Throws: `AttentionError.unsupportedDType` naming the first half-precision input.
func requireFloat32Activations(_ inputs: KeyValuePairs<String, Tensor?>) throws(AttentionError) {
    for case let (name, tensor?) in inputs {
        try tensor.requireFloat32(
            name, reason: "modules take float32 activations (their projection weights may be half precision)")
    }
}

/// The reason given when an operation without half-precision support meets a half tensor.
let defaultFloat32Reason =
    "this operation takes float32 only; convert explicitly with converted(to: .float32)"

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Tensor {
    /// Creates a `float16` tensor from its elements in row-major order.
    ///
    /// - Throws: as ``init(shape:scalars:)``.
    public init(shape: [Int], float16Scalars scalars: [Float16]) throws {
        try self.init(shape: shape, bitPatterns: scalars.map(\.bitPattern), dtype: .float16)
    }

    /// The elements in row-major order as `Float16` values (a copy): exact for a `float16`
    /// tensor, rounded to nearest even from the others (as ``converted(to:)`` rounds).
    public var float16Scalars: [Float16] {
        bitPatterns(as: .float16).map(Float16.init(bitPattern:))
    }
}
#endif
