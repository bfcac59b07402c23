/// A parameter whose shape in a checkpoint differs from the module's: one entry of
/// `AttentionError.checkpointMismatch`.
///
/// ```swift
/// let problem = ParameterShapeMismatch(name: "out_proj.weight", expected: [8, 8], actual: [8, 16])
/// print(problem)   // out_proj.weight: expected [8, 8], found [8, 16]
/// ```
public struct ParameterShapeMismatch: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The parameter's full name, prefix included.
    public var name: String

    /// The shape the module has.
    public var expected: [Int]

    /// The shape found in the checkpoint.
    public var actual: [Int]

    /// Creates a description of one mismatch.
    public init(name: String, expected: [Int], actual: [Int]) {
        self.name = name
        self.expected = expected
        self.actual = actual
    }

    /// `"name: expected [..], found [..]"`.
    public var description: String {
        "\(name): expected \(expected), found \(actual)"
    }
}

extension AttentionError {
    /// The message of `.checkpointMismatch`: every kind of problem, each list in full.
    func checkpointMismatchDescription(
        missing: [String], unexpected: [String], shapeMismatches: [ParameterShapeMismatch]
    ) -> String {
        var parts: [String] = []
        if !missing.isEmpty {
            parts.append("missing \(missing.count) (\(missing.joined(separator: ", ")))")
        }
        if !unexpected.isEmpty {
            parts.append("unexpected \(unexpected.count) (\(unexpected.joined(separator: ", ")))")
        }
        if !shapeMismatches.isEmpty {
            parts.append(
                "\(shapeMismatches.count) with another shape ("
                    + shapeMismatches.map(\.description).joined(separator: "; ") + ")")
        }
        return "the checkpoint does not match the module's parameters: " + parts.joined(separator: "; ")
    }
}
