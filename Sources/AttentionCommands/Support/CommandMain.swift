import ArgumentParser
internal import CProcessMemory
import Foundation

/// The `main` of the package's commands: ArgumentParser's parsing and generated `--help`, with
/// every error reported on one line that starts with the command's name.
///
/// ```swift
/// CommandMain.run(AttentionEmbed.self)   // the whole of Sources/attention-embed/main.swift
/// ```
package enum CommandMain {
    /// Parses the process's arguments into `Command` and runs it, then exits: status 0 after a
    /// run or `--help` (printed on standard output); 64 (`EX_USAGE`) for a mistake on the command
    /// line, from parsing or `validate()`; 1 for any other error. Errors go to standard error as
    /// ``diagnostic(for:of:)`` words them.
    package static func run<Command: ParsableCommand>(_: Command.Type) -> Never {
        // Freed activations stay in the process for the next layer (process_memory.h).
        _ = process_memory_keep_freed()
        do {
            var command = try Command.parse()
            try command.run()
            exit(0)
        } catch {
            let status = Command.exitCode(for: error)
            if status == .success {
                print(Command.fullMessage(for: error))
            } else {
                printLine(diagnostic(for: error, of: Command.self))
            }
            exit(status.rawValue)
        }
    }

    /// The one line that reports `error`: the command's name, then ArgumentParser's message for a
    /// usage error (which names the option as it is spelt, `--top-p`) with a pointer to `--help`,
    /// or the error's description for any other.
    package static func diagnostic<Command: ParsableCommand>(for error: any Error, of _: Command.Type) -> String {
        let name = Command.configuration.commandName ?? "\(Command.self)"
        let message = Command.message(for: error)
        guard Command.exitCode(for: error) == .validationFailure else { return "\(name): \(message)" }
        return "\(name): \(message) (see \(name) --help)"
    }

    /// One line on standard error.
    package static func printLine(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
