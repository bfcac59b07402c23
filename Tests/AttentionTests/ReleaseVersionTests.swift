import Foundation
import Testing
import Attention

/// One version everywhere: the C library's, the README's dependency line (and the DocC
/// article's), and the newest CHANGELOG entry.
@Suite("Release version")
struct ReleaseVersionTests {
    static func text(_ path: String) throws -> String {
        try String(contentsOf: DocumentationSnippets.root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The first capture of `pattern` in `text`.
    static func firstMatch(of pattern: String, in text: String) throws -> String? {
        let expression = try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
        let range = NSRange(text.startIndex..., in: text)
        guard let match = expression.firstMatch(in: text, range: range),
            let capture = Range(match.range(at: 1), in: text)
        else { return nil }
        return String(text[capture])
    }

    @Test func oneVersionEverywhere() throws {
        let version = AttentionBackend.version
        #expect(try Self.firstMatch(of: #"#define ATTN_VERSION_STRING "([0-9.]+)""#, in: Self.text("CKernels/include/attn.h")) == version)
        for document in ["README.md", "Sources/Attention/Documentation.docc/GettingStarted.md"] {
            let dependency = try Self.firstMatch(of: #"swift-attention\.git", from: "([0-9.]+)""#, in: Self.text(document))
            #expect(dependency == version, "\(document) depends on \(dependency ?? "no version"), the library is \(version)")
        }
        let newest = try Self.firstMatch(of: #"^## ([0-9]+\.[0-9]+\.[0-9]+)"#, in: Self.text("CHANGELOG.md"))
        #expect(newest == version, "CHANGELOG.md's newest entry is \(newest ?? "missing"), the library is \(version)")
        let parts = version.split(separator: ".")
        #expect(parts.count == 3 && parts.allSatisfy { Int($0) != nil })
    }
}
