import Attention
import Foundation

/// The `--input` and `--output` files of `attention-embed`.
enum SentenceFile {
    /// The strings of a JSON array file.
    ///
    /// - Throws: ``CommandFailure`` naming the file when it cannot be read or is not a JSON array
    ///   of strings.
    static func read(_ path: String) throws(CommandFailure) -> [String] {
        let bytes: [UInt8]
        do {
            bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CommandFailure("\(path): cannot be read (\(error.localizedDescription))")
        }
        guard case let .array(elements)? = try? JSONParser.parse(utf8: bytes) else {
            throw CommandFailure("\(path): expected a JSON array of strings")
        }
        var sentences: [String] = []
        for element in elements {
            guard case let .string(sentence) = element else {
                throw CommandFailure("\(path): expected a JSON array of strings")
            }
            sentences.append(sentence)
        }
        return sentences
    }

    /// The `--output` document: `[{"embedding": [...], "ids": [...]}, ...]` in input order.
    ///
    /// - Throws: ``CommandFailure`` naming the first sentence whose embedding is not finite.
    static func document(ids: [[Int]], embeddings: [[Float]]) throws(CommandFailure) -> JSONValue {
        var records: [JSONValue] = []
        for (index, embedding) in embeddings.enumerated() {
            guard let numbers = JSONValue.array(of: embedding) else {
                throw CommandFailure("the embedding of sentence \(index + 1) is not finite (NaN or infinity)")
            }
            records.append(.object(["ids": .array(of: ids[index]), "embedding": numbers]))
        }
        return .array(records)
    }

    /// Writes ``document(ids:embeddings:)`` to `path`.
    static func write(_ path: String, ids: [[Int]], embeddings: [[Float]]) throws(CommandFailure) {
        try OutputFile.write(document(ids: ids, embeddings: embeddings), toPath: path, option: "--output")
    }
}
