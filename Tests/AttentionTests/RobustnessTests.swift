import Foundation
import Testing
import Attention

// Defects reported by users (issue 10): each of these used to crash, trap or throw the wrong error.

@Suite("Robustness: errors instead of traps")
struct RobustnessTests {
    // MARK: Checkpoint files

    @Test func aPathThatIsNotARegularReadableFileIsAnInvalidCheckpoint() throws {
        func expectInvalidCheckpoint(at path: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try SafeTensors(contentsOf: URL(fileURLWithPath: path))
                Issue.record("\(path) was read as a checkpoint", sourceLocation: sourceLocation)
            } catch let AttentionError.invalidCheckpoint(reason) {
                #expect(reason.hasPrefix(path + ": "), "\(reason)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("\(path): \(error), expected AttentionError.invalidCheckpoint", sourceLocation: sourceLocation)
            }
        }
        expectInvalidCheckpoint(at: "/dev/null")
        expectInvalidCheckpoint(at: FileManager.default.temporaryDirectory.path)
        expectInvalidCheckpoint(at: FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID()).safetensors").path)

        // A link to a regular file is read as the file.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustness-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("a.safetensors"), link = directory.appendingPathComponent("link.safetensors")
        try SafeTensors.write(["x": Tensor(ones: [2])], to: file)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: file)
        #expect(try SafeTensors(contentsOf: link).tensor(named: "x").scalars == [1, 1])
    }

    // MARK: Allocations sized by the caller

    @Test func hugeMasksThrowInsteadOfAborting() throws {
        #expect(throws: AttentionError.outOfMemory(requestedBytes: 1 << 50)) {
            try BooleanMask(shape: [1 << 50]) { _ in true }
        }
        #expect(throws: AttentionError.outOfMemory(requestedBytes: 1 << 42)) {
            try TorchMask.squareSubsequent(1 << 20)
        }
        #expect(throws: AttentionError.overflow(argument: "size")) {
            try TorchMask.squareSubsequent(1 << 32)
        }
        #expect(throws: AttentionError.overflow(argument: "shape")) {
            try BooleanMask(shape: [1 << 40, 1 << 40]) { _ in true }
        }
        // Ordinary sizes are unchanged.
        #expect(try TorchMask.squareSubsequent(3) == .additive(Tensor(shape: [3, 3], scalars: [
            0, -.infinity, -.infinity,
            0, 0, -.infinity,
            0, 0, 0,
        ])))
        #expect(try TorchMask.squareSubsequent(0).shape == [0, 0])
    }

    // MARK: noxton's MultiheadAttention bias_k / bias_v

    @Test func noxtonBiasKeyAndValueLoadAndSaveInEitherConvention() throws {
        var rng = SeededGenerator(seed: 11)
        let source = try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, using: &rng)
        var noxtonCheckpoint = source.parameterDictionary()
        noxtonCheckpoint["bias_k"] = try source.biasKey!.reshaped([1, 8])
        noxtonCheckpoint["bias_v"] = try source.biasValue!.reshaped([1, 8])

        var module = try TorchMultiheadAttention(embedDim: 8, heads: 2, addBiasKV: true, using: &rng)
        // PyTorch's layout rejects noxton's shapes, as before.
        #expect(throws: AttentionError.checkpointMismatch(missing: [], unexpected: [], shapeMismatches: [
            ParameterShapeMismatch(name: "bias_k", expected: [1, 1, 8], actual: [1, 8]),
            ParameterShapeMismatch(name: "bias_v", expected: [1, 1, 8], actual: [1, 8]),
        ])) { try module.loadParameters(from: noxtonCheckpoint) }

        module.convention = .noxton
        try module.loadParameters(from: noxtonCheckpoint)
        #expect(module.biasKey == source.biasKey && module.biasValue == source.biasValue)
        #expect(module.parameterDictionary()["bias_k"]?.shape == [1, 8])
        let x = try Tensor(randomNormal: [5, 8], using: &rng)
        #expect(try module(query: x, key: x, value: x).output == source(query: x, key: x, value: x).output)

        module.convention = .torch
        #expect(module.parameterDictionary() == source.parameterDictionary())
    }

    // MARK: noxton encoder layer with an absent packed weight

    @Test func loadingIntoAnAbsentPackedWeightThrowsOrRebuildsIt() throws {
        var rng = SeededGenerator(seed: 12)
        var layer = try TransformerEncoderLayer(
            dModel: 8, heads: 2, feedForwardSize: 16, normFirst: true, convention: .noxton, using: &rng)
        layer.selfAttention.inProjectionWeight = nil
        #expect(throws: AttentionError.checkpointMismatch(missing: [], unexpected: [], shapeMismatches: [
            ParameterShapeMismatch(name: "self_attn.query_proj.weight", expected: [8, 8], actual: [0]),
        ])) {
            try layer.loadParameters(from: ["self_attn.query_proj.weight": Tensor(zeros: [0])], strict: false)
        }
        #expect(layer.selfAttention.inProjectionWeight == nil)

        // A projection of the right shape recreates the packed weight, zeros elsewhere.
        let query = try Tensor(randomNormal: [8, 8], using: &rng)
        try layer.loadParameters(from: ["self_attn.query_proj.weight": query], strict: false)
        let packed = try #require(layer.selfAttention.inProjectionWeight)
        #expect(packed.shape == [24, 8])
        #expect(try packed.sliced(0..<8) == query)
        #expect(try packed.sliced(8..<24).scalars.allSatisfy { $0 == 0 })
    }
}
