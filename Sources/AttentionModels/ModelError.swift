/// An error loading or running a model from a Hugging Face model folder: every case names the
/// file, setting, tensor or argument it concerns.
///
/// ```swift
/// do {
///     let embedder = try SentenceEmbedder(contentsOf: URL(fileURLWithPath: "models/all-MiniLM-L6-v2"))
/// } catch let error as ModelError {
///     print(error)   // config.json: hidden_act "relu6" is not supported (supported: gelu)
/// }
/// ```
///
/// Errors from the `Attention` layers (`AttentionError`) and from the file system pass through
/// unchanged.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file the model folder must have is absent.
    case missingFile(path: String)
    /// A file is unreadable or malformed: not JSON, a key missing or of the wrong type, a value out
    /// of range. `file` is the file's name, `reason` what is wrong and where.
    case invalidFile(file: String, reason: String)
    /// A setting has a value this implementation does not support.
    case unsupported(file: String, setting: String, value: String, supported: [String])
    /// A parameter the model needs is not in the checkpoint (its full name as looked up).
    case missingTensor(name: String, file: String)
    /// A parameter in the checkpoint has another shape than the configuration implies.
    case tensorShape(name: String, expected: [Int], actual: [Int])
    /// An argument of a call is out of range: a token id past the vocabulary, a sequence longer
    /// than the position table, an empty sequence.
    case invalidArgument(argument: String, reason: String)

    /// A one-line description naming the file, setting, tensor or argument.
    public var description: String {
        switch self {
        case let .missingFile(path):
            return "\(path): no such file"
        case let .invalidFile(file, reason):
            return "\(file): \(reason)"
        case let .unsupported(file, setting, value, supported):
            return "\(file): \(setting) \"\(value)\" is not supported (supported: \(supported.joined(separator: ", ")))"
        case let .missingTensor(name, file):
            return "\(file): no tensor \(name)"
        case let .tensorShape(name, expected, actual):
            return "\(name) has shape \(actual), expected \(expected)"
        case let .invalidArgument(argument, reason):
            return "\(argument): \(reason)"
        }
    }
}
