import Attention
internal import CProcessMemory
import Foundation

/// What the project's commands share around their own work: error reporting and exit statuses,
/// lines on standard error, output files written in place, medians of repeated timings, and the
/// allocator policy.
package enum CommandRunner {
    /// The whole of a command's `main`: parses the process's arguments into `Options`, prints the
    /// usage for `--help`, otherwise runs `body`; errors as ``run(named:_:)`` reports them.
    package static func main<Options: CommandOptions>(
        named name: String, parsing _: Options.Type, _ body: (Options) throws -> Void
    ) {
        // Freed activations stay in the process for the next layer (process_memory.h).
        _ = process_memory_keep_freed()
        run(named: name) {
            let options = try Options(Array(CommandLine.arguments.dropFirst()))
            if options.showHelp {
                print(Options.usage)
                return
            }
            try body(options)
        }
    }

    /// Runs `body` and exits as a command-line tool does: a ``UsageError`` is one line with a hint
    /// to run `--help`, exit status 64; any other error one line, exit status 1. Every line starts
    /// with `name`.
    package static func run(named name: String, _ body: () throws -> Void) {
        do {
            try body()
        } catch let error as UsageError {
            printLine("\(name): \(error.message)\nrun \(name) --help for the options")
            exit(64)
        } catch let error as RunError {
            printLine("\(name): \(error.message)")
            exit(1)
        } catch {
            printLine("\(name): \(error)")
            exit(1)
        }
    }

    /// Gives the kernels `threads` threads (`--threads`); `nil` keeps the default (all cores).
    ///
    /// - Throws: `UsageError` naming `--threads` when the backend refuses the count.
    package static func useThreads(_ threads: Int?) throws(UsageError) {
        guard let threads else { return }
        do {
            try AttentionBackend.setThreadCount(threads)
        } catch {
            throw UsageError("--threads: \(error)")
        }
    }

    /// The model in the folder at `path` (`--model`), made by `load`.
    ///
    /// - Throws: `RunError` saying the folder is missing (with `hint` when given) or what `load`
    ///   threw.
    package static func loadModel<Model>(
        at path: String, hint: String? = nil, _ load: (URL) throws -> Model
    ) throws(RunError) -> Model {
        let folder = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: folder.path) else {
            throw RunError("\(folder.path): no such model folder" + (hint.map { " (\($0))" } ?? ""))
        }
        do {
            return try load(folder)
        } catch {
            throw RunError("cannot load the model in \(folder.path): \(error)")
        }
    }

    /// One line on standard error.
    package static func printLine(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Writes `text` to `path` in place, not atomically: an atomic write renames a new file over the
    /// path, which would replace a device such as /dev/null or /dev/stdout with a regular file.
    ///
    /// - Throws: `RunError` naming `option` and the path when the file cannot be written.
    package static func write(_ text: String, toPath path: String, option: String) throws(RunError) {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            throw RunError("\(option) \(path): cannot be written (\(error.localizedDescription))")
        }
    }

    /// The median of `values` (the mean of the middle two for an even count); `values` is not empty.
    package static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
