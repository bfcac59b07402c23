extension SafeTensors {
    /// The element type of a tensor stored in a safetensors file, by the name the format uses.
    ///
    /// ``SafeTensors/tensor(named:)`` returns `F32`, `F16` and `BF16` tensors as stored (see
    /// ``tensorDType``); every other type converts to `Float`: exactly for booleans (0 or 1) and
    /// integers up to 2²⁴ in magnitude, with rounding to nearest for `F64` and larger integers.
    ///
    /// ```swift
    /// let file = try SafeTensors(contentsOf: url)
    /// if try file.dtype(of: "embeddings") == .bfloat16 { print("stored in bfloat16") }
    /// SafeTensors.DType(rawValue: "F16")   // .float16
    /// ```
    ///
    /// The 8-bit, 6-bit and 4-bit floating-point types of recent safetensors releases
    /// (`F8_E4M3`, `F8_E5M2`, `F4`, ...) and the complex type `C64` are not supported: a file
    /// holding one is rejected with `AttentionError.invalidCheckpoint`.
    public enum DType: String, Sendable, Equatable, Hashable, CaseIterable, CustomStringConvertible {
        /// One byte per element, 0 for `false` and 1 for `true`.
        case bool = "BOOL"
        /// Unsigned 8-bit integer.
        case uint8 = "U8"
        /// Signed 8-bit integer.
        case int8 = "I8"
        /// Unsigned 16-bit integer.
        case uint16 = "U16"
        /// Signed 16-bit integer.
        case int16 = "I16"
        /// IEEE 754 half precision (binary16): 5 exponent bits, 10 fraction bits.
        case float16 = "F16"
        /// bfloat16: the upper half of a `Float` (8 exponent bits, 7 fraction bits).
        case bfloat16 = "BF16"
        /// Unsigned 32-bit integer.
        case uint32 = "U32"
        /// Signed 32-bit integer.
        case int32 = "I32"
        /// IEEE 754 single precision: `Float`, the type of `Tensor`.
        case float32 = "F32"
        /// Unsigned 64-bit integer.
        case uint64 = "U64"
        /// Signed 64-bit integer.
        case int64 = "I64"
        /// IEEE 754 double precision.
        case float64 = "F64"

        /// The size of one element in bytes.
        public var byteSize: Int {
            switch self {
            case .bool, .uint8, .int8: 1
            case .uint16, .int16, .float16, .bfloat16: 2
            case .uint32, .int32, .float32: 4
            case .uint64, .int64, .float64: 8
            }
        }

        /// Whether this is a floating-point type (`F16`, `BF16`, `F32`, `F64`).
        public var isFloatingPoint: Bool {
            switch self {
            case .float16, .bfloat16, .float32, .float64: true
            default: false
            }
        }

        /// Whether this is a signed or unsigned integer type (not `BOOL`).
        public var isInteger: Bool {
            switch self {
            case .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64: true
            default: false
            }
        }

        /// The name the format uses: `"F32"`, `"BF16"`, `"BOOL"`, ...
        public var description: String { rawValue }

        /// The stored type of a tensor of `dtype`: `F32`, `F16` or `BF16`.
        public init(_ dtype: Tensor.DType) {
            switch dtype {
            case .float32: self = .float32
            case .float16: self = .float16
            case .bfloat16: self = .bfloat16
            }
        }

        /// The tensor dtype that holds this type as it is (`F32`, `F16`, `BF16`), or `nil` for
        /// the types that ``SafeTensors/tensor(named:)`` converts to `float32`.
        public var tensorDType: Tensor.DType? {
            switch self {
            case .float32: .float32
            case .float16: .float16
            case .bfloat16: .bfloat16
            default: nil
            }
        }
    }
}
