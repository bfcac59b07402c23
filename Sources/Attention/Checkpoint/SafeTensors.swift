import Foundation

/// A set of named tensors in the [safetensors](https://github.com/huggingface/safetensors) format:
/// the checkpoint format of Hugging Face, PyTorch (`safetensors.torch`), JAX/Flax and MLX.
///
/// Reading validates the whole file before any tensor is returned: the header length, the JSON
/// header, every tensor's dtype, shape and byte range, and that the tensors tile the data section
/// exactly (no overlap, no unindexed bytes). A malformed or truncated file throws
/// `AttentionError.invalidCheckpoint` with the reason; nothing is read outside the file.
///
/// ```swift
/// let file = try SafeTensors(contentsOf: URL(filePath: "model.safetensors"))
/// print(file.names)                                  // ["out_proj.bias", "out_proj.weight", ...]
/// let weight = try file.tensor(named: "out_proj.weight")   // F32, F16 or BF16 as stored
/// let widened = try file.tensor(named: "out_proj.weight", as: .float32)
/// print(file.metadata["format"] ?? "")               // "pt"
/// ```
///
/// `SafeTensors` is a value: build one in memory, then write it. Tensors are stored in their own
/// dtype (`F32`, `F16`, `BF16`: a half-precision tensor's bits exactly) or in the dtype asked for,
/// rounding to nearest even for `F16` and `BF16`:
///
/// ```swift
/// var checkpoint = SafeTensors(metadata: ["format": "pt"])
/// try checkpoint.insert(weight, named: "linear.weight")
/// try checkpoint.insert(weight, named: "linear.weight_half", as: .float16)
/// try checkpoint.insert(booleans: [true, false], shape: [2], named: "mask")
/// try checkpoint.write(to: URL(filePath: "out.safetensors"))
/// ```
///
/// Files written here are read by the reference implementation and vice versa: the header is
/// padded with spaces to a multiple of 8 bytes, tensors are laid out by decreasing element size
/// then by name, so every tensor is aligned to its element size.
public struct SafeTensors: Sendable, Equatable {
    /// One stored tensor: its type, shape and little-endian bytes (a slice of the file's data,
    /// shared, not copied).
    struct Entry: Sendable, Equatable {
        var dtype: DType
        var shape: [Int]
        var bytes: Data
        var count: Int { bytes.count / dtype.byteSize }
    }

    /// The file's `__metadata__`: free-form string pairs, such as `["format": "pt"]`.
    public var metadata: [String: String]

    private var entries: [String: Entry]

    // MARK: Creating

    /// Creates an empty set of tensors.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
        self.entries = [:]
    }

    /// Creates a set of tensors from a dictionary, each stored as `dtype` (`nil`: each in its own
    /// dtype).
    ///
    /// - Throws: the errors of ``insert(_:named:as:)``.
    public init(_ tensors: [String: Tensor], as dtype: DType? = nil, metadata: [String: String] = [:]) throws {
        self.init(metadata: metadata)
        for (name, tensor) in tensors {
            try insert(tensor, named: name, as: dtype)
        }
    }

    /// Reads and validates the bytes of a safetensors file.
    ///
    /// The tensors' bytes are kept as slices of `data` and converted when asked for.
    ///
    /// - Throws: `AttentionError.invalidCheckpoint` when the data is not a valid safetensors file:
    ///   shorter than 8 bytes; a header length past the end of the data or above 100 MB; a header
    ///   that is not a UTF-8 JSON object (duplicate keys and trailing commas are errors); an entry
    ///   without `dtype`, `shape` or `data_offsets`, or with a dtype outside ``DType``, a negative,
    ///   fractional or overflowing dimension, offsets out of order or past the end, a byte count
    ///   that is not the shape's element count × the dtype's size; overlapping tensors, or bytes of
    ///   the data section that belong to no tensor; `__metadata__` that is not an object of strings.
    public init(data: Data) throws {
        let (metadata, headerEntries, dataStart) = try Self.parseHeader(of: data)
        self.metadata = metadata
        var entries: [String: Entry] = [:]
        entries.reserveCapacity(headerEntries.count)
        let base = data.startIndex + dataStart
        for entry in headerEntries {
            entries[entry.name] = Entry(
                dtype: entry.dtype, shape: entry.shape, bytes: data[base + entry.begin ..< base + entry.end])
        }
        self.entries = entries
    }

    /// Reads and validates a safetensors file. The file is memory-mapped where the platform
    /// allows, so tensors that are never asked for are never read from disk. (As with any mapped
    /// file, truncating it from another process while this value is alive is not supported;
    /// ``write(to:)`` replaces files atomically, so overwriting a checkpoint with it is safe.)
    ///
    /// - Throws: `AttentionError.invalidCheckpoint` naming the path when it is not a regular,
    ///   readable file (a missing file, a directory, a device such as `/dev/null`) or cannot be
    ///   read, and (naming the file) as ``init(data:)``.
    public init(contentsOf url: URL) throws {
        let path = url.path
        func unreadable(_ reason: String) -> AttentionError {
            .invalidCheckpoint(reason: "\(path): \(reason)")
        }
        // The type of what the path leads to (`attributesOfItem` does not follow a final link).
        let target = url.resolvingSymlinksInPath().path
        let type: FileAttributeType?
        do {
            type = try FileManager.default.attributesOfItem(atPath: target)[.type] as? FileAttributeType
        } catch {
            throw unreadable("no such file, or it cannot be examined")
        }
        guard type == .typeRegular else {
            throw unreadable("not a regular file (\(type?.rawValue ?? "unknown type"))")
        }
        guard FileManager.default.isReadableFile(atPath: target) else {
            throw unreadable("the file is not readable")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw unreadable("the file cannot be read: \(error.localizedDescription)")
        }
        do {
            try self.init(data: data)
        } catch let AttentionError.invalidCheckpoint(reason) {
            throw AttentionError.invalidCheckpoint(reason: "\(url.lastPathComponent): \(reason)")
        }
    }

    // MARK: Inspecting

    /// The names of the tensors, sorted by their UTF-8 bytes (the metadata key is not among them).
    public var names: [String] {
        entries.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Whether a tensor of this name is present.
    public func contains(_ name: String) -> Bool {
        entries[name] != nil
    }

    private func entry(named name: String) throws -> Entry {
        guard let entry = entries[name] else {
            let known = names
            let listed = known.prefix(10).map(\.jsonLiteral).joined(separator: ", ")
            let more = known.count > 10 ? ", … \(known.count - 10) more" : ""
            throw AttentionError.invalidArgument(
                argument: "name",
                reason: "no tensor named \(name.jsonLiteral); the \(known.count) tensors are [\(listed)\(more)]")
        }
        return entry
    }

    /// The shape of a tensor, without converting its data.
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"name"`) when there is no such tensor.
    public func shape(of name: String) throws -> [Int] {
        try entry(named: name).shape
    }

    /// The stored element type of a tensor.
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"name"`) when there is no such tensor.
    public func dtype(of name: String) throws -> DType {
        try entry(named: name).dtype
    }

    // MARK: Reading

    /// A tensor as stored when its type is a ``Tensor/DType``: `F32` as `float32`, and `F16` and
    /// `BF16` as `float16` and `bfloat16` tensors holding the file's bits (not widened). Other
    /// types are converted to `float32`: exactly from `BOOL` (0 or 1), rounding to nearest from
    /// `F64` and from integers beyond 2²⁴.
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"name"`) when there is no such tensor;
    ///   `.outOfMemory` when it cannot be allocated.
    public func tensor(named name: String) throws -> Tensor {
        let entry = try entry(named: name)
        guard let dtype = entry.dtype.tensorDType, dtype != .float32 else {
            var tensor = try Tensor(uninitializedShape: entry.shape, argument: name)
            tensor.withUnsafeMutableBufferPointer { output in
                entry.bytes.withUnsafeBytes { entry.dtype.decode($0, into: output) }
            }
            return tensor
        }
        var tensor = try Tensor(uninitializedShape: entry.shape, dtype: dtype, argument: name)
        tensor.withUnsafeMutableRawBufferPointer { output in
            entry.bytes.withUnsafeBytes { input in
                for index in 0..<entry.count {
                    let bits = UInt16(littleEndian: input.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
                    output.storeBytes(of: bits, toByteOffset: 2 * index, as: UInt16.self)
                }
            }
        }
        return tensor
    }

    /// A tensor converted to `dtype`: ``tensor(named:)`` then ``Tensor/converted(to:)``, so the
    /// explicit way to widen a half-precision checkpoint tensor (exactly) or to narrow one.
    ///
    /// ```swift
    /// let embeddings = try file.tensor(named: "embeddings.word_embeddings.weight", as: .float32)
    /// ```
    ///
    /// - Throws: the errors of ``tensor(named:)``.
    public func tensor(named name: String, as dtype: Tensor.DType) throws -> Tensor {
        try tensor(named: name).converting(to: dtype, argument: name)
    }

    /// Every tensor, as ``tensor(named:)`` returns it.
    public func tensors() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        result.reserveCapacity(entries.count)
        for name in entries.keys {
            result[name] = try tensor(named: name)
        }
        return result
    }

    /// A tensor's elements as booleans in row-major order, for masks: `BOOL` as stored, and any
    /// other type as "nonzero" (NumPy's `astype(bool)`; NaN is `true`).
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"name"`) when there is no such tensor.
    public func booleans(named name: String) throws -> [Bool] {
        let entry = try entry(named: name)
        return entry.bytes.withUnsafeBytes { entry.dtype.decodeBooleans($0, count: entry.count) }
    }

    /// A tensor's elements as integers in row-major order, exactly: for key lengths, token ids or
    /// positions stored as `I64`, `I32`, ... (or floats holding whole numbers).
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"name"`) when there is no such tensor,
    ///   or when an element is not an integer that fits in `Int` (a fraction, NaN, or a `U64`
    ///   above `Int.max`).
    public func integers(named name: String) throws -> [Int] {
        let entry = try entry(named: name)
        let result = entry.bytes.withUnsafeBytes { entry.dtype.decodeIntegers($0, count: entry.count) }
        switch result {
        case let .success(values):
            return values
        case let .failure(failure):
            throw AttentionError.invalidArgument(
                argument: name,
                reason: "element \(failure.index) of this \(entry.dtype) tensor is not an integer that fits in Int")
        }
    }

    // MARK: Building

    private mutating func store(_ entry: Entry, named name: String) throws {
        guard name != Self.metadataKey else {
            throw AttentionError.invalidArgument(
                argument: "name", reason: "\"\(Self.metadataKey)\" is reserved for the file's metadata")
        }
        entries[name] = entry
    }

    private static func allocate(_ count: Int, of dtype: DType, argument: String) throws -> Data {
        let byteCount = try checkedProduct(count, dtype.byteSize, argument: argument)
        return Data(count: byteCount)
    }

    /// Adds a tensor, or replaces the tensor of the same name, stored as `dtype`, by default
    /// the tensor's own (`F32`, `F16` or `BF16`).
    ///
    /// A tensor stored in its own dtype keeps its bits exactly (NaN payloads included). Otherwise
    /// its values (half-precision ones widened exactly) are converted: floating-point types round
    /// to nearest even (`F16` and `BF16` overflow to infinity, as NumPy and PyTorch do); integer
    /// types need whole numbers in their range; `BOOL` needs 0 or 1.
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"name"`) for the reserved name
    ///   `"__metadata__"`, or (argument: the tensor's name) when an element cannot be stored as
    ///   `dtype`; `.overflow` when the byte count does not fit in `Int`.
    public mutating func insert(_ tensor: Tensor, named name: String, as dtype: DType? = nil) throws {
        let dtype = dtype ?? DType(tensor.dtype)
        var bytes = try Self.allocate(tensor.count, of: dtype, argument: name)
        if tensor.dtype != .float32, dtype.tensorDType == tensor.dtype {
            bytes.withUnsafeMutableBytes { output in
                for (index, bits) in tensor.storage.bitPatterns.enumerated() {
                    output.storeBytes(of: bits.littleEndian, toByteOffset: 2 * index, as: UInt16.self)
                }
            }
            try store(Entry(dtype: dtype, shape: tensor.shape, bytes: bytes), named: name)
            return
        }
        let result = bytes.withUnsafeMutableBytes { raw in
            tensor.withUnsafeBufferPointer { dtype.encode($0, into: raw) }
        }
        if case let .failure(failure) = result {
            let value = tensor.withUnsafeBufferPointer { $0[failure.index] }
            throw AttentionError.invalidArgument(
                argument: name,
                reason: "element \(failure.index) is \(value), which \(dtype) cannot hold"
                    + (dtype == .bool ? " (only 0 and 1)" : " exactly"))
        }
        try store(Entry(dtype: dtype, shape: tensor.shape, bytes: bytes), named: name)
    }

    /// Adds a `BOOL` tensor, or replaces the tensor of the same name.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (argument `"booleans"`) when the count is not the
    ///   shape's element count, and the errors of ``insert(_:named:as:)`` for the name and shape.
    public mutating func insert(booleans: [Bool], shape: [Int], named name: String) throws {
        _ = try elementCount(of: shape, matching: booleans.count, argument: "booleans", noun: "values")
        try store(Entry(dtype: .bool, shape: shape, bytes: Data(booleans.map { $0 ? 1 : 0 })), named: name)
    }

    /// Adds an integer tensor (`I64` by default, or any integer type or `BOOL`), or replaces the
    /// tensor of the same name.
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"dtype"`) for a floating-point type,
    ///   (argument: the tensor's name) for a value out of the type's range;
    ///   `.shapeMismatch` (argument `"integers"`) when the count is not the shape's element count.
    public mutating func insert(integers: [Int], shape: [Int], named name: String, as dtype: DType = .int64) throws {
        guard !dtype.isFloatingPoint else {
            throw AttentionError.invalidArgument(
                argument: "dtype", reason: "must be an integer type or BOOL for integers, got \(dtype)")
        }
        let count = try elementCount(of: shape, matching: integers.count, argument: "integers", noun: "values")
        var bytes = try Self.allocate(count, of: dtype, argument: name)
        let failed = bytes.withUnsafeMutableBytes { raw in
            integers.indices.first { !dtype.storeInteger(Int64(integers[$0]), at: $0, into: raw) }
        }
        if let failed {
            throw AttentionError.invalidArgument(
                argument: name, reason: "element \(failed) is \(integers[failed]), outside the range of \(dtype)")
        }
        try store(Entry(dtype: dtype, shape: shape, bytes: bytes), named: name)
    }

    /// Removes a tensor; returns whether it was present.
    ///
    /// ```swift
    /// file.removeTensor(named: "optimizer.state")
    /// ```
    @discardableResult
    public mutating func removeTensor(named name: String) -> Bool {
        entries.removeValue(forKey: name) != nil
    }

    // MARK: Writing

    /// The file's bytes: header, then the tensors laid out by decreasing element size, then by
    /// name (so each is aligned to its element size), as the reference implementation does.
    public func serialized() -> Data {
        let ordered = entries.sorted { lhs, rhs in
            if lhs.value.dtype.byteSize != rhs.value.dtype.byteSize {
                return lhs.value.dtype.byteSize > rhs.value.dtype.byteSize
            }
            return lhs.key.utf8.lexicographicallyPrecedes(rhs.key.utf8)
        }
        var layout: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        var offset = 0
        for (name, entry) in ordered {
            layout.append((name, entry.dtype, entry.shape, offset, offset + entry.bytes.count))
            offset += entry.bytes.count
        }
        var data = Data(Self.encodeHeader(metadata: metadata, tensors: layout))
        data.reserveCapacity(data.count + offset)
        for (_, entry) in ordered {
            data.append(entry.bytes)
        }
        return data
    }

    /// Writes the file, atomically (to a temporary file that then replaces `url`).
    ///
    /// - Throws: the file system's error when the file cannot be written.
    public func write(to url: URL) throws {
        try serialized().write(to: url, options: .atomic)
    }

    /// Writes tensors (each in its own dtype) and metadata to a safetensors file.
    ///
    /// - Throws: the errors of ``insert(_:named:as:)`` and ``write(to:)``.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try SafeTensors(tensors, metadata: metadata).write(to: url)
    }
}
