/// An error thrown by this module: every failure names the argument it concerns.
///
/// Arguments are named as the caller spelled them, with a path into nested values where needed
/// (`"key"`, `"mask.bias"`, `"dropout.probability"`, `"shape"`), so a message points at the
/// offending expression:
///
/// ```swift
/// do {
///     _ = try scaledDotProductAttention(query: query, key: key, value: value)
/// } catch let error as AttentionError {
///     print(error)
///     // key has shape [2, 3, 7, 16], expected [2, Hkv, Lk, 16] with Hkv dividing
///     // the query's 8 heads (grouped-query attention)
/// }
/// ```
///
/// Errors are `Equatable`, so tests can expect an exact error:
///
/// ```swift
/// #expect(throws: AttentionError.invalidArgument(argument: "shape", reason: "...")) { ... }
/// ```
public enum AttentionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A tensor's shape does not fit the shapes of the other arguments.
    ///
    /// `expected` describes the accepted shapes in words and symbols, e.g.
    /// `"[2, 8, Lk, 64] (B, Hkv, Lk, Dqk) matching the query"`; `actual` is the shape received.
    case shapeMismatch(argument: String, expected: String, actual: [Int])

    /// A value is out of its accepted range: a negative dimension, a probability outside [0, 1),
    /// a key length beyond the number of keys, and so on. `reason` says what was expected and
    /// what was received.
    case invalidArgument(argument: String, reason: String)

    /// A size computed from the argument (an element count, a byte count, an offset) does not fit
    /// in `Int`.
    case overflow(argument: String)

    /// Memory could not be allocated. `requestedBytes` is the size of the failed allocation when
    /// known, `nil` when the kernels' workspace allocation failed.
    case outOfMemory(requestedBytes: Int?)

    /// A tensor's element type is not accepted there: a half-precision tensor given to an
    /// operation that computes on `float32` only (layer norm, softmax, elementwise arithmetic, a
    /// matrix multiply's input or bias, an attention bias, ...). Nothing is widened silently:
    /// `reason` says what the argument accepts; ``Tensor/converted(to:)`` converts explicitly.
    ///
    /// ```swift
    /// AttentionError.unsupportedDType(
    ///     argument: "mask.bias", dtype: .bfloat16, reason: "the additive bias must be float32")
    /// ```
    case unsupportedDType(argument: String, dtype: Tensor.DType, reason: String)

    /// A feature this CPU or build does not have, such as an instruction set.
    case unsupported(feature: String, reason: String)

    /// The C kernels returned a status that the Swift checks did not foresee. `status` is the raw
    /// `attn_status` value and `message` describes it together with the call's shapes.
    case kernelFailure(status: Int32, message: String)

    /// A checkpoint file is malformed or truncated: `reason` says what is wrong and where
    /// (which tensor, which byte range), e.g. a header length past the end of the file.
    case invalidCheckpoint(reason: String)

    /// A set of named tensors does not fit a module's parameters. Every problem is listed at
    /// once: the parameters absent from the checkpoint (full names, prefix included), the
    /// checkpoint's names under the prefix that the module does not have, and the parameters whose
    /// shapes differ.
    ///
    /// ```swift
    /// AttentionError.checkpointMismatch(
    ///     missing: ["encoder.out_proj.bias"], unexpected: ["encoder.bias_k"],
    ///     shapeMismatches: [ParameterShapeMismatch(name: "encoder.in_proj_weight", expected: [24, 8], actual: [8, 24])])
    /// ```
    case checkpointMismatch(missing: [String], unexpected: [String], shapeMismatches: [ParameterShapeMismatch])

    /// A one-line, human-readable description that names the argument.
    public var description: String {
        switch self {
        case let .shapeMismatch(argument, expected, actual):
            return "\(argument) has shape \(actual), expected \(expected)"
        case let .invalidArgument(argument, reason):
            return "\(argument): \(reason)"
        case let .overflow(argument):
            return "\(argument): a size or offset computed from it does not fit in Int"
        case let .outOfMemory(requestedBytes?):
            return "out of memory: could not allocate \(requestedBytes) bytes"
        case .outOfMemory(nil):
            return "out of memory: the kernels could not allocate their workspace"
        case let .unsupportedDType(argument, dtype, reason):
            return "\(argument) is \(dtype), which is not supported here: \(reason)"
        case let .unsupported(feature, reason):
            return "\(feature) is unsupported: \(reason)"
        case let .kernelFailure(status, message):
            return "kernel failure (status \(status)): \(message)"
        case let .invalidCheckpoint(reason):
            return "invalid checkpoint: \(reason)"
        case let .checkpointMismatch(missing, unexpected, shapeMismatches):
            return checkpointMismatchDescription(
                missing: missing, unexpected: unexpected, shapeMismatches: shapeMismatches)
        }
    }
}

extension AttentionError {
    /// The same error with the argument it names passed through `rename`: how a module reports an
    /// error of a part it calls under its own argument names (`"attentionMask"` as `"memoryMask"`)
    /// or under the part's path (`"keyProjection.bias"`). Errors that name no argument are
    /// returned unchanged.
    func renamingArgument(_ rename: (String) -> String) -> AttentionError {
        switch self {
        case let .shapeMismatch(argument, expected, actual):
            .shapeMismatch(argument: rename(argument), expected: expected, actual: actual)
        case let .invalidArgument(argument, reason):
            .invalidArgument(argument: rename(argument), reason: reason)
        case let .overflow(argument):
            .overflow(argument: rename(argument))
        case let .unsupportedDType(argument, dtype, reason):
            .unsupportedDType(argument: rename(argument), dtype: dtype, reason: reason)
        default:
            self
        }
    }
}
