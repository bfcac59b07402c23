#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Android)
import Android
#endif

/// The heap buffer behind a `Tensor`: `count` elements of one ``Tensor/DType``, as raw bytes
/// aligned to 64 bytes (one cache line, one AVX-512 vector) so the kernels' loads start on a line.
/// Half-precision elements are their 16-bit patterns (`UInt16`), as the kernels take them.
///
/// A `Tensor` mutates its storage only after `isKnownUniquelyReferenced` has confirmed that no
/// other value shares it (copying it otherwise), so a storage object reachable from more than one
/// value is never written. That is why it can be `@unchecked Sendable`.
final class TensorStorage: @unchecked Sendable {
    /// The alignment of every buffer, in bytes.
    static let alignment = 64

    /// The elements' bytes: `count × dtype.byteSize` (`nil` base address when empty).
    let bytes: UnsafeMutableRawBufferPointer
    /// The number of elements.
    let count: Int
    /// How each element is stored.
    let dtype: Tensor.DType

    /// The elements of a `float32` storage.
    ///
    /// - Precondition: `dtype == .float32`. Every public entry point checks a tensor's dtype (and
    ///   throws `AttentionError.unsupportedDType`) before its f32 code reaches this, so the
    ///   precondition is an internal invariant that user input cannot break.
    var buffer: UnsafeMutableBufferPointer<Float> {
        precondition(dtype == .float32, "internal error: f32 access to a \(dtype) tensor")
        return UnsafeMutableBufferPointer(start: bytes.baseAddress?.assumingMemoryBound(to: Float.self), count: count)
    }

    /// The bit patterns of a `float16` or `bfloat16` storage.
    ///
    /// - Precondition: `dtype` is a 16-bit type (an internal invariant, as for ``buffer``).
    var bitPatterns: UnsafeMutableBufferPointer<UInt16> {
        precondition(dtype.byteSize == 2, "internal error: 16-bit access to a \(dtype) tensor")
        return UnsafeMutableBufferPointer(start: bytes.baseAddress?.assumingMemoryBound(to: UInt16.self), count: count)
    }

    /// Allocates `count` elements of `dtype`, uninitialised. Throws instead of trapping when the
    /// byte count overflows or the allocation fails.
    init(uninitializedCount count: Int, dtype: Tensor.DType = .float32, argument: String) throws(AttentionError) {
        precondition(count >= 0)
        self.count = count
        self.dtype = dtype
        if count == 0 {
            bytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            return
        }
        let byteCount = try checkedProduct(count, dtype.byteSize, argument: argument)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, Self.alignment, byteCount) == 0, let raw else {
            throw .outOfMemory(requestedBytes: byteCount)
        }
        // Float and UInt16 are trivial types: binding the raw memory is all the initialisation
        // they need before the initialisers write every element.
        switch dtype {
        case .float32: raw.bindMemory(to: Float.self, capacity: count)
        case .float16, .bfloat16: raw.bindMemory(to: UInt16.self, capacity: count)
        }
        bytes = UnsafeMutableRawBufferPointer(start: raw, count: byteCount)
    }

    /// `count` elements of `dtype`, each `value` rounded to `dtype` (to nearest even).
    convenience init(repeating value: Float, count: Int, dtype: Tensor.DType = .float32, argument: String) throws(AttentionError) {
        try self.init(uninitializedCount: count, dtype: dtype, argument: argument)
        fill(with: value)
    }

    /// Sets every element to `value`, rounded to nearest even for a half-precision storage.
    func fill(with value: Float) {
        switch dtype {
        case .float32: buffer.initialize(repeating: value)
        case .float16, .bfloat16: bitPatterns.initialize(repeating: dtype.bitPattern(from: value))
        }
    }

    /// A copy of `other`'s elements in a new buffer.
    convenience init(copying other: TensorStorage) {
        // The count was allocatable once, so it fits; only memory can run out.
        do {
            try self.init(uninitializedCount: other.count, dtype: other.dtype, argument: "tensor")
        } catch {
            fatalError("out of memory copying a tensor of \(other.count) elements before a mutation")
        }
        if let source = other.bytes.baseAddress {
            bytes.baseAddress!.copyMemory(from: source, byteCount: bytes.count)
        }
    }

    deinit {
        free(bytes.baseAddress)
    }
}
