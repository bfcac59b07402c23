#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Android)
import Android
#endif

/// The heap buffer behind a `Tensor`: `count` floats, aligned to 64 bytes (one cache line, one
/// AVX-512 vector) so the kernels' loads start on a line.
///
/// A `Tensor` mutates its storage only after `isKnownUniquelyReferenced` has confirmed that no
/// other value shares it (copying it otherwise), so a storage object reachable from more than one
/// value is never written. That is why it can be `@unchecked Sendable`.
final class TensorStorage: @unchecked Sendable {
    /// The alignment of every buffer, in bytes.
    static let alignment = 64

    let buffer: UnsafeMutableBufferPointer<Float>

    var count: Int { buffer.count }

    /// Allocates `count` floats, uninitialised. Throws instead of trapping when the byte count
    /// overflows or the allocation fails.
    init(uninitializedCount count: Int, argument: String) throws(AttentionError) {
        precondition(count >= 0)
        if count == 0 {
            buffer = UnsafeMutableBufferPointer(start: nil, count: 0)
            return
        }
        let bytes = try checkedProduct(count, MemoryLayout<Float>.stride, argument: argument)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, Self.alignment, bytes) == 0, let raw else {
            throw .outOfMemory(requestedBytes: bytes)
        }
        // `Float` is a trivial type: binding the raw memory is all the initialisation it needs
        // before the initialisers below write every element.
        let start = raw.bindMemory(to: Float.self, capacity: count)
        buffer = UnsafeMutableBufferPointer(start: start, count: count)
    }

    convenience init(repeating value: Float, count: Int, argument: String) throws(AttentionError) {
        try self.init(uninitializedCount: count, argument: argument)
        buffer.initialize(repeating: value)
    }

    /// A copy of `other`'s elements in a new buffer.
    convenience init(copying other: TensorStorage) {
        // The count was allocatable once, so it fits; only memory can run out.
        do {
            try self.init(uninitializedCount: other.count, argument: "tensor")
        } catch {
            fatalError("out of memory copying a tensor of \(other.count) elements before a mutation")
        }
        if let source = other.buffer.baseAddress {
            buffer.baseAddress!.initialize(from: source, count: other.count)
        }
    }

    deinit {
        free(buffer.baseAddress)
    }
}
