import Attention

extension JSONValue {
    /// A short rendering for error messages: a number as the file writes it, a string quoted (its
    /// first 40 characters), the kind of an array or object.
    var summary: String {
        switch self {
        case .null: "null"
        case let .bool(value): "\(value)"
        case let .number(literal): literal
        case let .string(value): "\"\(value.prefix(40))\""
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// The whole number this value holds: an integer literal, or a number literal of an integral
    /// value (`32.0`, `1e3`) as Foundation's decoder read them; `nil` for anything else.
    var integer: Int? {
        guard case let .number(literal) = self else { return nil }
        return Int(literal) ?? Double(literal).flatMap { Int(exactly: $0) }
    }

    /// The number this value holds, rounded to the nearest `Double`; `nil` when it is not a number.
    var double: Double? {
        guard case let .number(literal) = self else { return nil }
        return Double(literal)
    }
}
