import Foundation

/// A lazily built, concatenated copy of several projection weights (and biases), so that a
/// self-attention call projects the query, key and value with one matrix multiply.
///
/// The entry remembers the tensors it was built from and is valid only while the module still
/// holds those very tensors: it compares their storage by identity (and their shapes). Because the
/// entry keeps a reference to each source, any later mutation of a module's weight copies that
/// weight first (copy-on-write), which gives it a new storage and invalidates the entry; loading
/// parameters replaces the tensors, with the same effect. So a stale concatenation is never used.
///
/// Modules are value types; copies of a module share one cache, which is only ever replaced as a
/// whole under a lock, so it is safe to call copies from several threads.
final class PackedProjectionCache: @unchecked Sendable {
    private struct Entry {
        var sources: [Tensor?]
        var weight: Tensor
        var bias: Tensor?
    }

    private let lock = NSLock()
    private var entry: Entry?

    init() {}

    /// The concatenation for `sources`, from the cache when they are the tensors it was built
    /// from, else built by `build` and remembered.
    func packed(
        for sources: [Tensor?], build: () throws -> (weight: Tensor, bias: Tensor?)
    ) throws -> (weight: Tensor, bias: Tensor?) {
        lock.lock()
        defer { lock.unlock() }
        if let entry, entry.sources.count == sources.count,
           zip(entry.sources, sources).allSatisfy({ Self.same($0, $1) })
        {
            return (entry.weight, entry.bias)
        }
        let (weight, bias) = try build()
        entry = Entry(sources: sources, weight: weight, bias: bias)
        return (weight, bias)
    }

    /// Whether the cache currently holds an entry (for tests).
    var isFilled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return entry != nil
    }

    private static func same(_ a: Tensor?, _ b: Tensor?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case let (a?, b?): isSameTensor(a, b)
        default: false
        }
    }
}
