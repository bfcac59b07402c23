import ArgumentParser
import Foundation

/// The value of `--prompt-ids`: token ids separated by commas (`36,81,11`; spaces around an id
/// allowed).
enum TokenIDs {
    /// The ids in `text`.
    ///
    /// - Throws: `ValidationError` unless every comma-separated part is a non-negative integer.
    static func parse(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let ids = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, ids.count == parts.count, ids.allSatisfy({ $0 >= 0 }) else {
            throw ValidationError("must be non-negative integers separated by commas")
        }
        return ids
    }
}
