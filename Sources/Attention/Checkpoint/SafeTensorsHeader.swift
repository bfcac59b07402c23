import Foundation

// Reading and writing the header of a safetensors file, with every check the format allows.
//
// Layout: an unsigned 64-bit little-endian N; N bytes of UTF-8 JSON (an object mapping tensor names
// to {"dtype", "shape", "data_offsets"}, plus an optional "__metadata__" object of strings), padded
// with spaces; then the data section, which the tensors' [begin, end) byte offsets tile exactly.

extension SafeTensors {
    /// The largest header accepted, in bytes: the limit of the reference implementation (100 MB).
    static let maximumHeaderLength = 100_000_000

    /// The key of the metadata object in the header; it cannot name a tensor.
    static let metadataKey = "__metadata__"

    /// One tensor of the header, validated: its byte range lies in the data section and its size
    /// matches its shape and type.
    struct HeaderEntry {
        var name: String
        var dtype: DType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// Parses and validates the header of `data`, a whole safetensors file. Returns the metadata,
    /// the tensors, and the offset in `data` where the data section starts.
    static func parseHeader(
        of data: Data
    ) throws(AttentionError) -> (metadata: [String: String], entries: [HeaderEntry], dataStart: Int) {
        let fileSize = data.count
        guard fileSize >= 8 else {
            throw .invalidCheckpoint(
                reason: "the file is \(fileSize) bytes, too short for the 8-byte header length")
        }
        var headerLength64: UInt64 = 0
        for (index, byte) in data.prefix(8).enumerated() {
            headerLength64 |= UInt64(byte) << (8 * UInt64(index))
        }
        guard headerLength64 <= UInt64(maximumHeaderLength) else {
            throw .invalidCheckpoint(
                reason: "the header length \(headerLength64) exceeds the limit of \(maximumHeaderLength) bytes")
        }
        let headerLength = Int(headerLength64)
        guard headerLength <= fileSize - 8 else {
            throw .invalidCheckpoint(
                reason: "the header length \(headerLength) runs past the end of the \(fileSize)-byte file "
                    + "(truncated, or not a safetensors file)")
        }
        let dataStart = 8 + headerLength
        let dataLength = fileSize - dataStart
        let headerBytes = [UInt8](data[data.startIndex + 8 ..< data.startIndex + dataStart])

        guard headerBytes.first == UInt8(ascii: "{") else {
            throw .invalidCheckpoint(
                reason: headerBytes.isEmpty
                    ? "the header is empty" : "the header does not start with '{' (not a JSON object)")
        }
        // Valid UTF-8 decodes without replacement characters, so it survives a round trip unchanged.
        guard String(decoding: headerBytes, as: UTF8.self).utf8.elementsEqual(headerBytes) else {
            throw .invalidCheckpoint(reason: "the header is not valid UTF-8")
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(headerBytes)
        } catch {
            throw .invalidCheckpoint(
                reason: "the header is not valid JSON: \(error.message) at byte \(error.offset) of the header")
        }
        guard case let .object(members) = root else {
            throw .invalidCheckpoint(reason: "the header is \(root.kindDescription), not a JSON object")
        }

        var metadata: [String: String] = [:]
        var entries: [HeaderEntry] = []
        entries.reserveCapacity(members.count)
        for (name, value) in members {
            if name == metadataKey {
                metadata = try parseMetadata(value)
            } else {
                entries.append(try parseEntry(name: name, value: value, dataLength: dataLength))
            }
        }
        try checkTiling(entries, dataLength: dataLength)
        return (metadata, entries, dataStart)
    }

    private static func parseMetadata(_ value: JSONValue) throws(AttentionError) -> [String: String] {
        switch value {
        case .null:
            return [:]
        case let .object(members):
            var metadata: [String: String] = [:]
            for (key, value) in members {
                guard case let .string(text) = value else {
                    throw .invalidCheckpoint(
                        reason: "__metadata__[\"\(key)\"] is \(value.kindDescription); metadata values must be strings")
                }
                metadata[key] = text
            }
            return metadata
        default:
            throw .invalidCheckpoint(
                reason: "__metadata__ is \(value.kindDescription); it must be an object of strings")
        }
    }

    /// A JSON number that is a non-negative integer fitting in `Int`, or a description of why not.
    private static func nonNegativeInteger(_ value: JSONValue) -> Result<Int, IntegerProblem> {
        guard case let .number(text) = value else { return .failure(.notANumber(value.kindDescription)) }
        if text.hasPrefix("-") { return .failure(.negative(text)) }
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .failure(.notAnInteger(text))
        }
        guard let integer = Int(text) else { return .failure(.tooLarge(text)) }
        return .success(integer)
    }

    private enum IntegerProblem: Error {
        case notANumber(String), negative(String), notAnInteger(String), tooLarge(String)

        var description: String {
            switch self {
            case let .notANumber(kind): "\(kind), not an integer"
            case let .negative(text): "\(text), which is negative"
            case let .notAnInteger(text): "\(text), not an integer"
            case let .tooLarge(text): "\(text), which does not fit in Int"
            }
        }
    }

    private static func parseEntry(
        name: String, value: JSONValue, dataLength: Int
    ) throws(AttentionError) -> HeaderEntry {
        let quoted = name.jsonLiteral
        guard case let .object(fields) = value else {
            throw .invalidCheckpoint(reason: "tensor \(quoted) is \(value.kindDescription), not an object")
        }
        // dtype
        guard let dtypeValue = fields["dtype"] else {
            throw .invalidCheckpoint(reason: "tensor \(quoted) has no \"dtype\"")
        }
        guard case let .string(dtypeName) = dtypeValue else {
            throw .invalidCheckpoint(reason: "tensor \(quoted) has a \"dtype\" that is \(dtypeValue.kindDescription)")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw .invalidCheckpoint(
                reason: "tensor \(quoted) has the unknown or unsupported dtype \(dtypeName.jsonLiteral) (supported: "
                    + DType.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        // shape
        guard let shapeValue = fields["shape"] else {
            throw .invalidCheckpoint(reason: "tensor \(quoted) has no \"shape\"")
        }
        guard case let .array(dimensions) = shapeValue else {
            throw .invalidCheckpoint(reason: "tensor \(quoted) has a \"shape\" that is \(shapeValue.kindDescription)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dimensions.count)
        for (axis, dimension) in dimensions.enumerated() {
            switch nonNegativeInteger(dimension) {
            case let .success(size): shape.append(size)
            case let .failure(problem):
                throw .invalidCheckpoint(
                    reason: "tensor \(quoted) has dimension \(axis) of its shape equal to \(problem.description)")
            }
        }
        // data_offsets
        guard let offsetsValue = fields["data_offsets"] else {
            throw .invalidCheckpoint(reason: "tensor \(quoted) has no \"data_offsets\"")
        }
        guard case let .array(offsets) = offsetsValue, offsets.count == 2 else {
            throw .invalidCheckpoint(
                reason: "tensor \(quoted) has \"data_offsets\" that are not an array of two integers [begin, end]")
        }
        var bounds: [Int] = []
        for (index, offset) in offsets.enumerated() {
            switch nonNegativeInteger(offset) {
            case let .success(position): bounds.append(position)
            case let .failure(problem):
                throw .invalidCheckpoint(
                    reason: "tensor \(quoted) has data_offsets[\(index)] equal to \(problem.description)")
            }
        }
        let (begin, end) = (bounds[0], bounds[1])
        guard begin <= end else {
            throw .invalidCheckpoint(
                reason: "tensor \(quoted) has data_offsets [\(begin), \(end)] with begin > end")
        }
        guard end <= dataLength else {
            throw .invalidCheckpoint(
                reason: "tensor \(quoted) has data_offsets [\(begin), \(end)] past the end of the "
                    + "\(dataLength)-byte data section (truncated file?)")
        }
        // size
        let byteCount: Int
        do {
            let count = try elementCount(of: shape, argument: name)
            byteCount = try checkedProduct(count, dtype.byteSize, argument: name)
        } catch {
            throw .invalidCheckpoint(
                reason: "tensor \(quoted) has shape \(shape), whose size in bytes does not fit in Int")
        }
        guard end - begin == byteCount else {
            throw .invalidCheckpoint(
                reason: "tensor \(quoted) has data_offsets [\(begin), \(end)] spanning \(end - begin) bytes, "
                    + "but shape \(shape) of \(dtype) needs \(byteCount)")
        }
        return HeaderEntry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// The tensors must cover the data section exactly, in some order: no overlap (two names for
    /// the same bytes), no hole and no trailing bytes (the format forbids unindexed bytes, so a file
    /// cannot hide a second payload).
    private static func checkTiling(_ entries: [HeaderEntry], dataLength: Int) throws(AttentionError) {
        let sorted = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var covered = 0
        var previous: HeaderEntry?
        for entry in sorted {
            if entry.begin < covered, let previous {
                throw .invalidCheckpoint(
                    reason: "tensors \(previous.name.jsonLiteral) [\(previous.begin), \(previous.end)] and "
                        + "\(entry.name.jsonLiteral) [\(entry.begin), \(entry.end)] overlap")
            }
            if entry.begin > covered {
                throw .invalidCheckpoint(
                    reason: "bytes [\(covered), \(entry.begin)) of the data section belong to no tensor "
                        + "(a hole before \(entry.name.jsonLiteral))")
            }
            covered = entry.end
            previous = entry
        }
        if covered != dataLength {
            throw .invalidCheckpoint(
                reason: "bytes [\(covered), \(dataLength)) at the end of the data section belong to no tensor")
        }
    }

    /// The header for tensors laid out in the order given, as the bytes of the file before the
    /// data: the length, then the JSON padded with spaces to a multiple of 8 bytes, so that the
    /// data section (and every tensor, given the ordering of ``serialized()``) is aligned.
    static func encodeHeader(
        metadata: [String: String], tensors: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)]
    ) -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let members = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { "\($0.key.jsonLiteral):\($0.value.jsonLiteral)" }
            parts.append("\(metadataKey.jsonLiteral):{\(members.joined(separator: ","))}")
        }
        for tensor in tensors {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            parts.append(
                "\(tensor.name.jsonLiteral):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(tensor.begin),\(tensor.end)]}")
        }
        var json = Array("{\(parts.joined(separator: ","))}".utf8)
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + json.count)
        let length = UInt64(json.count)
        for index in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: length >> (8 * UInt64(index)))) }
        bytes.append(contentsOf: json)
        return bytes
    }
}
