import Attention
import Foundation
import Testing
@testable import AttentionModels

/// The half-precision audit of the model types (the Attention tests audit the library's own; this
/// target cannot share their helper): every parameter of the tiny BERT, written in float16 and in
/// bfloat16 through its public property one at a time, and every tensor input, gives the float32
/// result of the widened values or throws `unsupportedDType` naming that position. No trap.
@Suite struct HalfPrecisionModelsAuditTests {
    let embedder: SentenceEmbedder
    let batch: TokenBatch

    init() throws {
        embedder = try SentenceEmbedder(contentsOf: fixtureURL("tiny-bert"))
        batch = try TokenBatch(embedder.tokenize(["half precision, audited", "a second sentence"]))
    }

    /// For each parameter path of `module` and each half dtype: `forward` with that parameter
    /// converted either throws `unsupportedDType` of that dtype naming it (as `names[path]` when
    /// the module calls it otherwise), or matches `forward` with the converted values widened.
    func audit<Module: ParameterizedModule>(
        _ module: Module, names: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation,
        _ forward: (Module) throws -> Tensor
    ) throws {
        for entry in module.parameterPaths {
            for dtype in [Tensor.DType.float16, .bfloat16] {
                var half = module, widened = module
                half[keyPath: entry.path] = try module[keyPath: entry.path].converted(to: dtype)
                widened[keyPath: entry.path] = try half[keyPath: entry.path].converted(to: .float32)
                let label = "\(entry.name) in \(dtype)"
                do {
                    let output = try forward(half)
                    #expect(module.matrixWeightNames.contains(entry.name), "accepted a half \(label)", sourceLocation: sourceLocation)
                    expectClose(output.scalars, try forward(widened).scalars, rtol: 1e-4, atol: 1e-4, label)
                } catch let AttentionError.unsupportedDType(argument, refused, _) {
                    #expect(refused == dtype && argument.hasSuffix(names[entry.name] ?? entry.name),
                            "named \(argument). \(label)", sourceLocation: sourceLocation)
                }
            }
        }
    }

    @Test func everyParameterOfTheModel() throws {
        let model = embedder.model
        try audit(model) { try $0(batch) }
        try audit(model.embeddings) { try $0(batch) }
        let hidden = try model.embeddings(batch)
        try audit(model.layers[0]) { try $0(hidden, batch: batch) }
        try audit(model.layers[0].query) { try $0(hidden) }
    }

    @Test func everyTensorInput() throws {
        let hidden = try embedder.model.embeddings(batch)
        for dtype in [Tensor.DType.float16, .bfloat16] {
            let half = try hidden.converted(to: dtype)
            for (argument, call) in [
                ("hidden", { _ = try embedder.model.layers[0](half, batch: batch) }),
                ("input", { _ = try embedder.model.layers[0].query(half) }),
                ("hidden", { _ = try embedder.pooling(half, batch: batch) }),
            ] as [(String, () throws -> Void)] {
                do {
                    try call()
                    Issue.record("a \(dtype) \(argument) was accepted")
                } catch let AttentionError.unsupportedDType(name, refused, _) {
                    #expect(name == argument && refused == dtype, "named \(name)")
                }
            }
        }
    }
}
