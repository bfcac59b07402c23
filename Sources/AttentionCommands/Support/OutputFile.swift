import Attention
import Foundation

/// A file a command writes (`--output`).
package enum OutputFile {
    /// Writes `value` as JSON text and a newline to `path` in place, not atomically: an atomic
    /// write renames a new file over the path, which would replace a device such as /dev/null or
    /// /dev/stdout with a regular file.
    ///
    /// - Throws: ``CommandFailure`` naming `option` and the path when the file cannot be written.
    package static func write(_ value: JSONValue, toPath path: String, option: String) throws(CommandFailure) {
        do {
            try Data((value.serialized + "\n").utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            throw CommandFailure("\(option) \(path): cannot be written (\(error.localizedDescription))")
        }
    }
}
