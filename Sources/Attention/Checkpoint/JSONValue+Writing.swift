// JSON text from a `JSONValue`: the writing half of the package's one JSON stack (JSON.swift reads).
//
// Every value it can hold is valid JSON: a number is made from a finite value only (JSON has no NaN
// or infinity, and a bare `nan` would make the whole file unreadable), so a non-finite result is
// the caller's decision to report, never a silently broken file.

extension JSONValue {
    /// The number `value`, as Swift's shortest round-tripping description writes it (`0.1`,
    /// `1e-05`); `nil` for NaN and the infinities, which JSON cannot represent.
    package init?(_ value: Float) {
        guard value.isFinite else { return nil }
        self = .number("\(value)")
    }

    /// The integer `value`.
    package init(_ value: Int) {
        self = .number(String(value))
    }

    /// An array of the numbers `values`; `nil` when one of them is not finite.
    package static func array(of values: [Float]) -> JSONValue? {
        var elements: [JSONValue] = []
        elements.reserveCapacity(values.count)
        for value in values {
            guard let element = JSONValue(value) else { return nil }
            elements.append(element)
        }
        return .array(elements)
    }

    /// An array of the integers `values`.
    package static func array(of values: [Int]) -> JSONValue {
        .array(values.map(JSONValue.init))
    }

    /// This value as compact JSON text (no whitespace between tokens), the members of each object
    /// in the order of their keys, so that the same value always gives the same text.
    package var serialized: String {
        var text = ""
        write(to: &text)
        return text
    }

    private func write(to text: inout String) {
        switch self {
        case .null: text += "null"
        case let .bool(value): text += value ? "true" : "false"
        case let .number(literal): text += literal
        case let .string(value): text += value.jsonLiteral
        case let .array(elements):
            text += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { text += "," }
                element.write(to: &text)
            }
            text += "]"
        case let .object(members):
            text += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { text += "," }
                text += key.jsonLiteral + ":"
                members[key]!.write(to: &text)
            }
            text += "}"
        }
    }
}

extension String {
    /// This string as a JSON string literal: quotes, backslashes and control characters escaped,
    /// everything else written as UTF-8.
    var jsonLiteral: String {
        var result = "\""
        for scalar in unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16, uppercase: false)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
