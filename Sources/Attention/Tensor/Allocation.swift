#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Android)
import Android
#endif

/// Checks that an array of `count` elements of `Element` can be created: that its byte count fits
/// in `Int` and that that many bytes can be allocated now. Swift's `Array` traps when its
/// allocation fails, so whatever sizes an array from a caller's size asks here first and throws
/// instead. (Memory taken by another thread between this check and the array's own allocation can
/// still make that one fail; the check catches the sizes no machine has.)
///
/// - Throws: `AttentionError.overflow(argument:)` or `.outOfMemory(requestedBytes:)`.
func checkAllocatable<Element>(_ count: Int, of _: Element.Type, argument: String) throws(AttentionError) {
    let bytes = try checkedProduct(count, MemoryLayout<Element>.stride, argument: argument)
    if bytes == 0 { return }
    guard let probe = malloc(bytes) else { throw .outOfMemory(requestedBytes: bytes) }
    free(probe)
}
