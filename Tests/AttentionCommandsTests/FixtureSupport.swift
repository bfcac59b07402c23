import Foundation

/// A tiny model of `Tests/AttentionModelsTests/Fixtures`, read in place.
func modelFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AttentionModelsTests/Fixtures/\(name)").path
}

/// A path for a file the test writes, in a folder of its own.
func temporaryPath(_ name: String) throws -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attention-commands-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder.appendingPathComponent(name).path
}
