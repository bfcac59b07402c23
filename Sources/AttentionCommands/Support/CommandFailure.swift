/// A failure after the arguments were parsed (a file, the model, a result): the command prints
/// ``description`` on one line and exits with status 1.
///
/// Mistakes on the command line are ArgumentParser's `ValidationError` instead (exit status 64).
package struct CommandFailure: Error, Equatable, CustomStringConvertible {
    /// What failed, naming the file, the option or the model.
    package var description: String

    /// A failure described by `description`.
    package init(_ description: String) { self.description = description }
}
