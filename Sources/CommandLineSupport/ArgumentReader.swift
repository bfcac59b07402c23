/// The arguments of a command, read front to back, with the checks every option's value needs.
///
/// ```swift
/// var reader = ArgumentReader(["--threads", "2"])
/// while let option = reader.next() {
///     if option == "--threads" { threads = try reader.count(for: option, minimum: 1) }
/// }
/// ```
package struct ArgumentReader {
    private var remaining: ArraySlice<String>

    /// A reader of `arguments` (without the program name).
    package init(_ arguments: [String]) { remaining = arguments[...] }

    /// The next argument, or `nil` when none is left.
    package mutating func next() -> String? { remaining.popFirst() }

    /// The value that follows `option`.
    ///
    /// - Throws: `UsageError` when the arguments end first.
    package mutating func value(for option: String) throws(UsageError) -> String {
        guard let value = remaining.popFirst() else { throw UsageError("\(option) needs a value") }
        return value
    }

    /// The integer of at least `minimum` that follows `option`.
    ///
    /// - Throws: `UsageError` for a missing value, one that is not an integer, or one below `minimum`.
    package mutating func count(for option: String, minimum: Int) throws(UsageError) -> Int {
        let text = try value(for: option)
        guard let number = Int(text), number >= minimum else {
            throw UsageError("\(option) must be an integer of at least \(minimum), got \"\(text)\"")
        }
        return number
    }

    /// The finite number that follows `option`.
    ///
    /// - Throws: `UsageError` for a missing value or one that is not a finite number.
    package mutating func number(for option: String) throws(UsageError) -> Float {
        let text = try value(for: option)
        guard let number = Float(text), number.isFinite else {
            throw UsageError("\(option) must be a number, got \"\(text)\"")
        }
        return number
    }
}
