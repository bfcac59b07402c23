import ArgumentParser
import Attention
import Foundation

/// `--threads N`, which both commands take: how many threads the kernels use.
package struct ThreadOptions: ParsableArguments {
    /// The thread count; `nil` keeps the default (all cores).
    @Option(name: .customLong("threads"), parsing: .unconditional,
            help: ArgumentHelp("Threads for the kernels (default: all cores).", valueName: "N"))
    package var count: Int?

    /// No thread count: the default.
    package init() {}

    /// Checks that the count is at least 1 and at most the processors this process can run on
    /// (more threads than processors only wait for one another).
    package func validate() throws {
        let largest = Swift.min(ProcessInfo.processInfo.activeProcessorCount, AttentionBackend.maximumThreadCount)
        if let count, !(1...largest).contains(count) {
            throw ValidationError(
                "--threads must be in 1...\(largest) (the processors this process can run on), got \(count)")
        }
    }

    /// Gives the kernels the thread count, when one was given.
    package func apply() throws {
        if let count { try AttentionBackend.setThreadCount(count) }
    }
}
