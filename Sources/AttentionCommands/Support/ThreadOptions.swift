import ArgumentParser
import Attention

/// `--threads N`, which both commands take: how many threads the kernels use.
package struct ThreadOptions: ParsableArguments {
    /// The thread count; `nil` keeps the default (all cores).
    @Option(name: .customLong("threads"), parsing: .unconditional,
            help: ArgumentHelp("Threads for the kernels (default: all cores).", valueName: "N"))
    package var count: Int?

    /// No thread count: the default.
    package init() {}

    /// Checks that the count is one the kernels accept.
    package func validate() throws {
        let largest = AttentionBackend.maximumThreadCount
        if let count, !(1...largest).contains(count) {
            throw ValidationError("--threads must be an integer in 1...\(largest), got \(count)")
        }
    }

    /// Gives the kernels the thread count, when one was given.
    package func apply() throws {
        if let count { try AttentionBackend.setThreadCount(count) }
    }
}
