import Foundation

/// The model folder a command loads (`--model`).
package enum ModelFolder {
    /// The model in the folder at `path`, made by `load`.
    ///
    /// - Throws: ``CommandFailure`` saying the folder is missing (with `hint` when given) or what
    ///   `load` threw.
    package static func load<Model>(
        _ path: String, hint: String? = nil, _ load: (URL) throws -> Model
    ) throws(CommandFailure) -> Model {
        let folder = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: folder.path) else {
            throw CommandFailure("\(folder.path): no such model folder" + (hint.map { " (\($0))" } ?? ""))
        }
        do {
            return try load(folder)
        } catch {
            throw CommandFailure("cannot load the model in \(folder.path): \(error)")
        }
    }
}
