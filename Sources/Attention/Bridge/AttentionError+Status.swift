internal import CAttention

extension AttentionError {
    /// The error for a status returned by the C library, or `nil` for `ATTN_OK`.
    ///
    /// - Parameters:
    ///   - function: the C function that returned it, e.g. `"attn_forward"`.
    ///   - context: the arguments of the call with their shapes, for the message.
    init?(status: attn_status, function: String, context: String) {
        let text = String(cString: attn_status_string(status))
        switch status {
        case ATTN_OK:
            return nil
        case ATTN_ERR_OUT_OF_MEMORY:
            self = .outOfMemory(requestedBytes: nil)
        case ATTN_ERR_OVERFLOW:
            self = .overflow(argument: context)
        case ATTN_ERR_UNSUPPORTED:
            self = .unsupported(feature: "\(function)(\(context))", reason: text)
        default:
            self = .kernelFailure(
                status: Int32(truncatingIfNeeded: status.rawValue),
                message: "\(function) returned \"\(text)\" for \(context)")
        }
    }
}
