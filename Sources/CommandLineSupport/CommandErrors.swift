/// A mistake on the command line: printed with the usage hint, exit status 64.
package struct UsageError: Error {
    /// What was wrong, naming the option.
    package var message: String

    /// A usage error with its message.
    package init(_ message: String) { self.message = message }
}

/// A failure after parsing (a file, the model): one line on standard error, exit status 1.
package struct RunError: Error {
    /// What failed, naming the file or the model.
    package var message: String

    /// A run error with its message.
    package init(_ message: String) { self.message = message }
}
