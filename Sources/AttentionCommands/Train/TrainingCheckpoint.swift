import Attention
import AttentionModels
import Foundation

/// A checkpoint of a run, `--output/checkpoint-STEP`: a complete model folder (the weights in
/// f32, the tokenizer), the optimiser's state (`optimizer.safetensors`) and where the run was
/// (`trainer_state.json`), from which `--resume` continues as if the run had not stopped.
struct TrainingCheckpoint: Sendable, Equatable {
    /// The steps taken.
    var step: Int
    /// The batches consumed (one per step).
    var dataPosition: Int
    /// What fixes the order of the data: a resumed run must use the same.
    var batchSize: Int
    var sequenceLength: Int
    var seed: UInt64

    /// The name of the checkpoint folder of step `step` in `output`.
    static func folder(step: Int, in output: URL) -> URL {
        output.appendingPathComponent("checkpoint-\(step)")
    }

    /// Writes the checkpoint as `folder`: everything goes to a temporary sibling folder first,
    /// which then replaces `folder`, so an interrupted save (a full disk) leaves the previous
    /// checkpoints as they were and no partial one.
    ///
    /// - Throws: ``CommandFailure`` naming what could not be written.
    func write(
        model: LlamaForCausalLM, tokenizer: ByteLevelBPETokenizer, optimizer: AdamW, to folder: URL
    ) throws(CommandFailure) {
        let partial = folder.deletingLastPathComponent().appendingPathComponent(".\(folder.lastPathComponent).partial")
        let manager = FileManager.default
        do {
            try? manager.removeItem(at: partial)
            try model.write(to: partial)
            try tokenizer.write(to: partial)
            try optimizer.saveState(to: partial.appendingPathComponent("optimizer.safetensors"))
            try Data((json.serialized + "\n").utf8).write(to: partial.appendingPathComponent("trainer_state.json"))
            if manager.fileExists(atPath: folder.path) { try manager.removeItem(at: folder) }
            try manager.moveItem(at: partial, to: folder)
        } catch {
            try? manager.removeItem(at: partial)
            throw CommandFailure("cannot save the checkpoint \(folder.path): \(error)")
        }
    }

    /// Reads `trainer_state.json` of a checkpoint folder.
    ///
    /// - Throws: ``CommandFailure`` when the folder is not a checkpoint or the file is malformed.
    init(contentsOf folder: URL) throws(CommandFailure) {
        let url = folder.appendingPathComponent("trainer_state.json")
        guard let bytes = try? Data(contentsOf: url) else {
            throw CommandFailure("--resume: \(folder.path) is not a checkpoint (no trainer_state.json)")
        }
        guard case let .object(members)? = try? JSONParser.parse(utf8: [UInt8](bytes)) else {
            throw CommandFailure("--resume: \(url.path) is not valid JSON")
        }
        func number(_ key: String) -> UInt64? {
            guard case let .number(literal)? = members[key] else { return nil }
            return UInt64(literal)
        }
        guard let step = number("step"), let position = number("data_position"), let batchSize = number("batch_size"),
              let length = number("sequence_length"), let seed = number("seed"),
              [step, position, batchSize, length].allSatisfy({ $0 <= UInt64(Int.max) }), batchSize >= 1, length >= 1
        else {
            throw CommandFailure("--resume: \(url.path) is not a valid trainer state")
        }
        self.init(
            step: Int(step), dataPosition: Int(position), batchSize: Int(batchSize), sequenceLength: Int(length), seed: seed)
    }

    init(step: Int, dataPosition: Int, batchSize: Int, sequenceLength: Int, seed: UInt64) {
        (self.step, self.dataPosition, self.batchSize, self.sequenceLength, self.seed) =
            (step, dataPosition, batchSize, sequenceLength, seed)
    }

    private var json: JSONValue {
        .object([
            "step": JSONValue(step), "data_position": JSONValue(dataPosition), "batch_size": JSONValue(batchSize),
            "sequence_length": JSONValue(sequenceLength), "seed": .number(String(seed)),
        ])
    }
}
