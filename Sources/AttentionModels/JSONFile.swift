import Attention
import Foundation

/// A JSON object read from one of a model folder's files, with typed accessors whose errors name
/// the file and the key. Absent keys and `null` read as `nil`; a value of another type throws.
///
/// The files are parsed by `Attention`'s strict parser (the one that reads safetensors headers),
/// not decoded into `Decodable` structs: one parser behaves the same on every platform (a
/// duplicate key or a trailing comma is an error, an integer is read exactly), and an error can
/// quote the offending value ("hidden_size must be an integer, got \"32\""), which a
/// `DecodingError` does not carry.
struct JSONFile: Sendable {
    /// The file's name, for errors (`config.json`, `1_Pooling/config.json`).
    let name: String
    let members: [String: JSONValue]

    init(name: String, members: [String: JSONValue]) {
        self.name = name
        self.members = members
    }

    /// Reads and parses `url`; `name` is how errors refer to it.
    ///
    /// - Throws: `ModelError.missingFile` when there is no file, `.invalidFile` when it cannot be
    ///   read or is not a JSON object.
    init(contentsOf url: URL, name: String) throws(ModelError) {
        let value = try Self.parse(url, name: name)
        guard case let .object(members) = value else {
            throw .invalidFile(file: name, reason: "is not a JSON object but \(value.summary)")
        }
        self.init(name: name, members: members)
    }

    /// Reads a file holding a JSON array of objects (`modules.json`).
    static func objects(contentsOf url: URL, name: String) throws(ModelError) -> [JSONFile] {
        let value = try parse(url, name: name)
        guard case .array = value else {
            throw .invalidFile(file: name, reason: "is not a JSON array but \(value.summary)")
        }
        return try JSONFile(name: name, members: ["file": value]).objects("file") ?? []
    }

    /// The parsed contents of `url`.
    private static func parse(_ url: URL, name: String) throws(ModelError) -> JSONValue {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw .missingFile(path: url.path)
        }
        let bytes: [UInt8]
        do {
            bytes = try [UInt8](Data(contentsOf: url))
        } catch {
            throw .invalidFile(file: name, reason: "cannot be read (\(error.localizedDescription))")
        }
        do {
            return try JSONParser.parse(utf8: bytes)
        } catch {
            throw .invalidFile(file: name, reason: "is not valid JSON")
        }
    }

    private func value(_ key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    private func mismatch(_ key: String, _ expected: String, _ value: JSONValue) -> ModelError {
        .invalidFile(file: name, reason: "\(key) must be \(expected), got \(value.summary)")
    }

    /// The whole number under `key`.
    func integer(_ key: String) throws(ModelError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let integer = value.integer else { throw mismatch(key, "an integer", value) }
        return integer
    }

    /// The finite number under `key`.
    func number(_ key: String) throws(ModelError) -> Double? {
        guard let value = value(key) else { return nil }
        guard let number = value.double, number.isFinite else { throw mismatch(key, "a number", value) }
        return number
    }

    /// The boolean under `key`.
    func boolean(_ key: String) throws(ModelError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard case let .bool(boolean) = value else { throw mismatch(key, "true or false", value) }
        return boolean
    }

    /// The string under `key`.
    func string(_ key: String) throws(ModelError) -> String? {
        guard let value = value(key) else { return nil }
        guard case let .string(string) = value else { throw mismatch(key, "a string", value) }
        return string
    }

    /// The string under `key`, or `defaultValue` when there is none, which must be one of
    /// `supported`: the settings a model implements one way only.
    ///
    /// - Throws: `ModelError.invalidFile` for a value that is not a string; `.unsupported` naming
    ///   `setting` (the key by default) for any other value.
    func choice(
        _ key: String, default defaultValue: String, supported: [String], setting: String? = nil
    ) throws(ModelError) -> String {
        let chosen = try string(key) ?? defaultValue
        guard supported.contains(chosen) else {
            throw .unsupported(file: name, setting: setting ?? key, value: chosen, supported: supported)
        }
        return chosen
    }

    /// The whole numbers under `key`: one number or an array of them (`eos_token_id`).
    func integers(_ key: String) throws(ModelError) -> [Int]? {
        guard let value = value(key) else { return nil }
        let elements: [JSONValue]
        if case let .array(array) = value { elements = array } else { elements = [value] }
        var result: [Int] = []
        for element in elements {
            guard let integer = element.integer else {
                throw mismatch(key, "an integer or an array of integers", value)
            }
            result.append(integer)
        }
        return result
    }

    /// The object under `key`, as a `JSONFile` of the same name.
    func object(_ key: String) throws(ModelError) -> JSONFile? {
        guard let value = value(key) else { return nil }
        guard case let .object(members) = value else { throw mismatch(key, "an object", value) }
        return JSONFile(name: name, members: members)
    }

    /// The array of objects under `key`.
    func objects(_ key: String) throws(ModelError) -> [JSONFile]? {
        guard let value = value(key) else { return nil }
        guard case let .array(elements) = value else { throw mismatch(key, "an array", value) }
        var result: [JSONFile] = []
        for (index, element) in elements.enumerated() {
            guard case let .object(members) = element else {
                throw mismatch("\(key)[\(index)]", "an object", element)
            }
            result.append(JSONFile(name: name, members: members))
        }
        return result
    }

    /// The whole number under `key`, which must be present and at least `minimum`.
    func requiredInteger(_ key: String, minimum: Int = 1) throws(ModelError) -> Int {
        guard let value = try integer(key) else { throw .invalidFile(file: name, reason: "no \(key)") }
        guard value >= minimum else {
            throw .invalidFile(file: name, reason: "\(key) must be at least \(minimum), got \(value)")
        }
        return value
    }
}
