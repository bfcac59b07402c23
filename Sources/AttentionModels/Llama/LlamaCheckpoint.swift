import Attention
import Foundation

/// Where a model's tensors come from as it is built: a checkpoint, or a fresh initialisation.
/// Each call returns the tensor `name` of `shape`, in `dtype` (`nil`: as the source has it).
protocol LlamaWeightSource {
    func tensor(_ name: String, shape: [Int], dtype: Tensor.DType?) throws -> Tensor
}

/// The weights of a Hugging Face model folder: one `model.safetensors`, or the shards
/// `model-0000N-of-0000M.safetensors` that `model.safetensors.index.json` maps each tensor to.
/// Every read checks the tensor's presence and shape and names it in the error.
struct LlamaCheckpoint: LlamaWeightSource, Sendable {
    /// The contents of each weights file, by file name.
    private let files: [String: SafeTensors]
    /// The file holding each tensor.
    private let fileOfTensor: [String: String]

    /// Reads the weights of `folder`: the index and its shards when the index is there, else
    /// `model.safetensors`.
    ///
    /// - Throws: `ModelError.missingFile` when neither is there or a shard named by the index is
    ///   absent; `.invalidFile` for a malformed index; `AttentionError.invalidCheckpoint` for a
    ///   malformed safetensors file.
    init(folder: URL) throws {
        let indexURL = folder.appendingPathComponent("model.safetensors.index.json")
        let singleURL = folder.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: indexURL.path) {
            let index = try JSONFile(contentsOf: indexURL, name: indexURL.lastPathComponent)
            guard let map = try index.object("weight_map") else {
                throw ModelError.invalidFile(file: index.name, reason: "no weight_map")
            }
            var fileOfTensor: [String: String] = [:]
            for name in map.members.keys {
                guard let file = try map.string(name) else {
                    throw ModelError.invalidFile(file: index.name, reason: "weight_map.\(name) must be a file name")
                }
                fileOfTensor[name] = file
            }
            var files: [String: SafeTensors] = [:]
            for file in Set(fileOfTensor.values).sorted() {
                let url = folder.appendingPathComponent(file)
                guard FileManager.default.fileExists(atPath: url.path) else { throw ModelError.missingFile(path: url.path) }
                files[file] = try SafeTensors(contentsOf: url)
            }
            self.files = files
            self.fileOfTensor = fileOfTensor
        } else if FileManager.default.fileExists(atPath: singleURL.path) {
            let contents = try SafeTensors(contentsOf: singleURL)
            files = [singleURL.lastPathComponent: contents]
            fileOfTensor = Dictionary(uniqueKeysWithValues: contents.names.map { ($0, singleURL.lastPathComponent) })
        } else {
            throw ModelError.missingFile(path: singleURL.path)
        }
    }

    /// Wraps one in-memory checkpoint; `file` is how errors name it.
    init(_ contents: SafeTensors, file: String = "model.safetensors") {
        files = [file: contents]
        fileOfTensor = Dictionary(uniqueKeysWithValues: contents.names.map { ($0, file) })
    }

    /// Whether the checkpoint has a tensor of this name.
    func contains(_ name: String) -> Bool { fileOfTensor[name] != nil }

    /// The tensor `name`, which must have `shape`, in `dtype` (`nil`: as stored, f32 for a stored
    /// type other than f32, f16 and bf16).
    ///
    /// - Throws: `ModelError.missingTensor` or `.tensorShape` naming it.
    func tensor(_ name: String, shape: [Int], dtype: Tensor.DType?) throws -> Tensor {
        guard let file = fileOfTensor[name], let contents = files[file], contents.contains(name) else {
            throw ModelError.missingTensor(name: name, file: fileOfTensor[name] ?? files.keys.sorted().joined(separator: ", "))
        }
        let actual = try contents.shape(of: name)
        guard actual == shape else { throw ModelError.tensorShape(name: name, expected: shape, actual: actual) }
        let stored = try contents.tensor(named: name)
        return try dtype.map { try stored.converted(to: $0) } ?? stored
    }
}
