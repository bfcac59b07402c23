import AttentionModels
import Foundation

/// A tiny model of `Tests/AttentionModelsTests/Fixtures`, read in place.
func modelFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AttentionModelsTests/Fixtures/\(name)").path
}

/// Runs `body` with a new empty folder, removed afterwards.
func withTemporaryFolder(_ body: (URL) throws -> Void) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attention-commands-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    try body(folder)
}

/// A model folder in `folder`: the tiny Llama's files (linked) and `tokenizer`'s `tokenizer.json`.
func llamaFolder(in folder: URL, tokenizer: ByteLevelBPETokenizer) throws -> String {
    let model = folder.appendingPathComponent("tiny-llama-with-tokenizer")
    try tokenizer.write(to: model)
    for name in ["config.json", "model.safetensors"] {
        try FileManager.default.createSymbolicLink(
            at: model.appendingPathComponent(name), withDestinationURL: URL(fileURLWithPath: modelFixture("tiny-llama/\(name)")))
    }
    return model.path
}
