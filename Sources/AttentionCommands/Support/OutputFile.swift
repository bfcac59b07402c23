import Attention
import Foundation

/// A file a command writes (`--output`), or standard output when the path is `-`.
package enum OutputFile {
    /// The path that names standard output.
    package static let standardOutput = "-"

    /// Whether `path` sends the document to standard output, where the command's report would
    /// otherwise go: the report then goes to standard error, so standard output holds JSON only.
    package static func takesStandardOutput(_ path: String?) -> Bool { path == standardOutput }

    /// Checks, before any work, that `path` can be written: an existing file must be writable and
    /// not a folder; a new file's folder must exist and be writable. Standard output always can.
    ///
    /// - Throws: ``CommandFailure`` naming `option` and the path.
    package static func checkWritable(_ path: String, option: String) throws(CommandFailure) {
        if path == standardOutput { return }
        let files = FileManager.default
        let url = URL(fileURLWithPath: path)
        var isFolder: ObjCBool = false
        if files.fileExists(atPath: url.path, isDirectory: &isFolder) {
            if isFolder.boolValue { throw CommandFailure("\(option) \(path): is a folder, not a file") }
            guard files.isWritableFile(atPath: url.path) else {
                throw CommandFailure("\(option) \(path): cannot be written (permission denied)")
            }
            return
        }
        let folder = url.deletingLastPathComponent().path
        guard files.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw CommandFailure("\(option) \(path): cannot be written (no folder \(folder))")
        }
        guard files.isWritableFile(atPath: folder) else {
            throw CommandFailure("\(option) \(path): cannot be written (folder \(folder) is not writable)")
        }
    }

    /// Writes `value` as JSON text and a newline to `path` in place, not atomically (an atomic
    /// write renames a new file over the path, which would replace a device such as /dev/null with
    /// a regular file), or to standard output when `path` is `-`.
    ///
    /// - Throws: ``CommandFailure`` naming `option` and the path when the file cannot be written.
    package static func write(_ value: JSONValue, toPath path: String, option: String) throws(CommandFailure) {
        let bytes = Data((value.serialized + "\n").utf8)
        if path == standardOutput {
            FileHandle.standardOutput.write(bytes)
            return
        }
        do {
            try bytes.write(to: URL(fileURLWithPath: path))
        } catch {
            throw CommandFailure("\(option) \(path): cannot be written (\(error.localizedDescription))")
        }
    }

    /// Writes `text` as it is, at once (no newline added, nothing buffered): on standard output,
    /// or on standard error when `outputPath` is `-`. For a report printed piece by piece.
    package static func writeReport(_ text: String, outputPath: String?) {
        let handle = takesStandardOutput(outputPath) ? FileHandle.standardError : FileHandle.standardOutput
        handle.write(Data(text.utf8))
    }

    /// Prints the command's human-readable `report`: on standard output, or on standard error when
    /// `outputPath` is `-` and standard output carries the JSON document.
    package static func printReport(_ report: String, outputPath: String?) {
        if takesStandardOutput(outputPath) {
            CommandMain.printLine(report)
        } else {
            print(report)
        }
    }
}
