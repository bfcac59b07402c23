/// A command's options, parsed from its arguments.
package protocol CommandOptions {
    /// The text `--help` prints.
    static var usage: String { get }

    /// Whether `--help` was given (the other options are then not required).
    var showHelp: Bool { get }

    /// Parses `arguments` (without the program name).
    ///
    /// - Throws: `UsageError` naming the option that is missing, unknown or malformed.
    init(_ arguments: [String]) throws(UsageError)
}
