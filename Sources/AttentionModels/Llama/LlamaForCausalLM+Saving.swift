import Attention
import Foundation

extension LlamaForCausalLM {
    /// Writes the model as a Hugging Face folder that `transformers`'
    /// `LlamaForCausalLM.from_pretrained` loads as it is, and ``init(contentsOf:weightDType:)``
    /// reads back: `config.json`, `model.safetensors` (`transformers`' names, every tensor as
    /// `dtype`; no `lm_head.weight` when tied) and `generation_config.json`. The folder is created
    /// when missing; each file is written atomically (to a temporary name, then renamed), so a
    /// failure leaves no file half written.
    ///
    /// ```swift
    /// try model.write(to: URL(fileURLWithPath: "runs/tiny"), dtype: .bfloat16)
    /// try ByteLevelBPETokenizer.plainBytes.write(to: URL(fileURLWithPath: "runs/tiny"))
    /// ```
    ///
    /// - Throws: `ModelError.invalidArgument` (`"folder"`) naming the file that cannot be written
    ///   and why (a full disk, say).
    public func write(to folder: URL, dtype: Tensor.DType = .float32) throws {
        let weights = try safeTensors(metadata: ["format": "pt"], as: SafeTensors.DType(dtype)).serialized()
        var generation: [String: JSONValue] = ["_from_model_config": .bool(true)]
        if !configuration.endOfSequenceTokenIDs.isEmpty {
            generation["eos_token_id"] = configuration.endOfSequenceJSON
        }
        let files = [
            ("config.json", Data((configuration.json(dtype: dtype).serialized + "\n").utf8)),
            ("model.safetensors", weights),
            ("generation_config.json", Data((JSONValue.object(generation).serialized + "\n").utf8)),
        ]
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw ModelError.invalidArgument(argument: "folder", reason: "cannot create \(folder.path) (\(error.localizedDescription))")
        }
        for (name, bytes) in files {
            do {
                try bytes.write(to: folder.appendingPathComponent(name), options: .atomic)
            } catch {
                throw ModelError.invalidArgument(
                    argument: "folder", reason: "cannot write \(name) in \(folder.path) (\(error.localizedDescription))")
            }
        }
    }
}
