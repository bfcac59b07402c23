import CommandLineSupport
import Foundation

/// The `--input` and `--output` files.
enum SentenceFile {
    /// The strings of a JSON array file.
    static func read(_ path: String) throws(RunError) -> [String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RunError("\(path): cannot be read (\(error.localizedDescription))")
        }
        do {
            return try JSONDecoder().decode([String].self, from: data)
        } catch {
            throw RunError("\(path): expected a JSON array of strings")
        }
    }

    /// Writes `[{"ids": [...], "embedding": [...]}, ...]`, one object per line.
    static func write(_ path: String, ids: [[Int]], embeddings: [[Float]]) throws(RunError) {
        var text = "[\n"
        for index in ids.indices {
            text += "{\"ids\": [" + ids[index].map(String.init).joined(separator: ", ") + "], \"embedding\": ["
            text += embeddings[index].map { "\($0)" }.joined(separator: ", ") + "]}"
            text += index + 1 < ids.count ? ",\n" : "\n"
        }
        text += "]\n"
        try CommandRunner.write(text, toPath: path, option: "--output")
    }
}
