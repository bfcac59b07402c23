import Foundation

/// The Swift blocks of README.md and the DocC catalogues, and the test sources that run them:
/// ``DocumentationSnippetTests`` checks that every block appears, line for line, in some test.
enum DocumentationSnippets {
    /// The package's root folder.
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The documents whose Swift blocks are user-facing examples.
    static func documents() throws -> [URL] {
        var documents = [root.appendingPathComponent("README.md")]
        for module in ["Attention", "AttentionModels", "AttentionCommands"] {
            let catalogue = root.appendingPathComponent("Sources/\(module)/Documentation.docc")
            let names = try FileManager.default.contentsOfDirectory(atPath: catalogue.path).sorted()
            documents += names.filter { $0.hasSuffix(".md") }.map { catalogue.appendingPathComponent($0) }
        }
        return documents
    }

    /// The ```swift blocks of `text`, each as its lines.
    static func blocks(in text: String) -> [[String]] {
        var blocks: [[String]] = []
        var current: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if current == nil, line == "```swift" {
                current = []
            } else if current != nil, line.hasPrefix("```") {
                blocks.append(current!)
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    /// The lines that must match: trimmed, without blank lines and without imports (a test file
    /// has its imports at the top; `Tests/Documentation/check_snippets.sh` compiles each block
    /// with exactly its own).
    static func normalized(_ lines: [String]) -> [String] {
        lines.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("import ") }
    }

    /// Whether a block is a package manifest, which the script evaluates and no test runs.
    static func isManifest(_ block: [String]) -> Bool {
        block.first?.hasPrefix("// swift-tools-version") == true
    }

    /// The normalized lines of every Swift file under Tests/.
    static func testSources() throws -> [[String]] {
        let tests = root.appendingPathComponent("Tests")
        guard let files = FileManager.default.enumerator(atPath: tests.path) else { return [] }
        var sources: [[String]] = []
        for case let path as String in files where path.hasSuffix(".swift") && !path.contains("Fixtures/") {
            let text = try String(contentsOf: tests.appendingPathComponent(path), encoding: .utf8)
            sources.append(normalized(text.components(separatedBy: "\n")))
        }
        return sources
    }

    /// Whether `needle` occurs as consecutive lines of `haystack`.
    static func contains(_ haystack: [String], _ needle: [String]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}
