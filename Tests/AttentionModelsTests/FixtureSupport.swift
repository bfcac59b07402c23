import Attention
import Foundation
import Testing

/// The folder of this target's fixtures (copied into the test bundle).
func fixtureURL(_ name: String) throws -> URL {
    let folder = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    return folder.appendingPathComponent(name)
}

/// Decodes a JSON fixture.
func loadFixture<Value: Decodable>(_ type: Value.Type, _ name: String) throws -> Value {
    try JSONDecoder().decode(Value.self, from: Data(contentsOf: fixtureURL(name)))
}

/// The package root, found from this file's path (`Tests/AttentionModelsTests/...`).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Expects `actual` close to `expected` element by element: `|a - e| <= atol + rtol · |e|`,
/// reporting the largest difference and where it is.
func expectClose(
    _ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 2e-5, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard actual.count == expected.count else {
        Issue.record("\(what): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    var worst = (index: 0, excess: -Float.infinity, difference: Float(0))
    for index in actual.indices {
        let difference = abs(actual[index] - expected[index])
        let excess = difference - (atol + rtol * abs(expected[index]))
        if excess > worst.excess || difference.isNaN { worst = (index, difference.isNaN ? .infinity : excess, difference) }
    }
    #expect(
        worst.excess <= 0,
        "\(what): largest difference \(worst.difference) at \(worst.index) (\(actual[worst.index]) vs \(expected[worst.index]))",
        sourceLocation: sourceLocation)
}

/// Row `index` of a rank-2 tensor.
func row(_ matrix: Tensor, _ index: Int) throws -> [Float] {
    try matrix.sliced(index..<(index + 1)).scalars
}

/// Compares every parameter gradient with the fixture's `output.grad.<name>` (a float64
/// reference stored as float32; float32's own rounding through the layers reaches about 4e-5 on
/// these sums), and checks that both name the same parameters.
func expectGradientsMatch<Module: ParameterizedModule>(
    _ gradients: ParameterGradients<Module>, _ fixture: SafeTensors, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let expected = fixture.names.filter { $0.hasPrefix("output.grad.") }.map { String($0.dropFirst("output.grad.".count)) }
    #expect(Set(expected) == Set(gradients.names), "\(what): parameter names", sourceLocation: sourceLocation)
    for (parameter, gradient) in gradients {
        let reference = try fixture.tensor(named: "output.grad.\(parameter)")
        #expect(gradient.shape == reference.shape, "\(what) \(parameter)", sourceLocation: sourceLocation)
        expectClose(gradient.scalars, reference.scalars, rtol: 1e-4, atol: 1e-4, "\(what) \(parameter)", sourceLocation: sourceLocation)
    }
}

/// Calls `body` with each line of a fixture script's `--sweep` file: the code point (the first
/// field, in hex) and all the line's space-separated fields. Returns the number of lines.
func forEachSweepLine(_ path: String, _ body: (Unicode.Scalar, [Substring]) throws -> Void) throws -> Int {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var count = 0
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        let scalar = try #require(UInt32(fields[0], radix: 16).flatMap(Unicode.Scalar.init))
        try body(scalar, fields)
        count += 1
    }
    return count
}
