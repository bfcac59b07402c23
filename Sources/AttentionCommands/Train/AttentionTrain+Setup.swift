import ArgumentParser
import Attention
import AttentionModels
import Foundation

// What a run starts from: the model, the tokenizer and the batches, each checked against the
// others before any step.

extension AttentionTrain {
    /// The folder the model (and by default the tokenizer) comes from: `--model` or `--resume`.
    var sourceFolder: URL? { (model ?? resume).map { URL(fileURLWithPath: $0) } }

    /// The model of `--config` (new, from the seed), `--model` or `--resume`, in f32.
    ///
    /// - Throws: ``CommandFailure`` naming the file and what is wrong with it.
    func loadModel(seed: UInt64) throws(CommandFailure) -> LlamaForCausalLM {
        if let config {
            let configuration: LlamaConfiguration
            do {
                configuration = try LlamaConfiguration(contentsOf: URL(fileURLWithPath: config))
            } catch {
                throw CommandFailure("--config: \(error)")
            }
            do {
                return try LlamaForCausalLM(initializing: configuration, seed: seed)
            } catch {
                throw CommandFailure("--config: cannot make the model: \(error)")
            }
        }
        return try ModelFolder.load(sourceFolder!.path) { try LlamaForCausalLM(contentsOf: $0, weightDType: .float32) }
    }

    /// The tokenizer of `--tokenizer`, else the source folder's `tokenizer.json`, else plain bytes;
    /// checked against the model's vocabulary.
    ///
    /// - Throws: ``CommandFailure`` when the file cannot be read or has ids past the vocabulary.
    func loadTokenizer(vocabularySize: Int) throws(CommandFailure) -> ByteLevelBPETokenizer {
        let file = tokenizer.map { URL(fileURLWithPath: $0) }
            ?? sourceFolder.map { $0.appendingPathComponent("tokenizer.json") }
        let loaded: ByteLevelBPETokenizer
        if let file, tokenizer != nil || FileManager.default.fileExists(atPath: file.path) {
            do {
                loaded = try ByteLevelBPETokenizer(contentsOfFile: file)
            } catch {
                throw CommandFailure("cannot read the tokenizer \(file.path): \(error)")
            }
        } else {
            loaded = .plainBytes
        }
        guard loaded.idCount <= vocabularySize else {
            throw CommandFailure(
                "the tokenizer has \(loaded.idCount) ids, more than the model's vocab_size \(vocabularySize)")
        }
        return loaded
    }

    /// The training batches and, with `--eval-every`, the held-out ones.
    ///
    /// - Throws: ``CommandFailure`` for data that cannot be read, is empty, is too short for one
    ///   window, or (stored batches) has another shape than the options say or ids past the
    ///   vocabulary; for a window longer than the model's positions.
    func loadBatches(
        tokenizer: ByteLevelBPETokenizer, model: LlamaForCausalLM, resumed: TrainingCheckpoint?
    ) throws -> (training: TrainingBatches, heldOut: [TrainingBatches.Batch]) {
        let vocabularySize = model.configuration.vocabularySize
        let batches: TrainingBatches
        var heldOut: [TrainingBatches.Batch] = []
        if let tokenBatches {
            batches = try Self.storedBatches(tokenBatches, vocabularySize: vocabularySize)
            for (option, given, stored) in [
                ("--batch-size", batchSize, batches.batchSize), ("--sequence-length", sequenceLength, batches.sequenceLength),
            ] {
                if let given, given != stored {
                    throw CommandFailure("\(option) \(given) differs from --token-batches' \(stored)")
                }
            }
        } else {
            let tokens = try Self.tokens(of: data!, tokenizer: tokenizer)
            let (batchSize, length) = (batchSize ?? resumed?.batchSize ?? 8, sequenceLength ?? resumed?.sequenceLength ?? 256)
            var trainingTokens = tokens
            if reporting.evaluationInterval != nil {
                let split = Int(Double(tokens.count) * (1 - reporting.evaluationFraction))
                trainingTokens = Array(tokens[..<split])
                heldOut = try TrainingBatches(
                    tokens: Array(tokens[split...]), batchSize: batchSize, sequenceLength: length, seed: nil,
                    describedAs: "the held-out --eval-fraction \(reporting.evaluationFraction) of --data"
                ).sequentialBatches(maximumCount: reporting.evaluationBatches)
            }
            batches = try TrainingBatches(
                tokens: trainingTokens, batchSize: batchSize, sequenceLength: length, seed: seed ?? resumed?.seed ?? 0,
                describedAs: "--data")
        }
        guard batches.sequenceLength <= model.configuration.maxPositions else {
            throw CommandFailure(
                "--sequence-length \(batches.sequenceLength) exceeds the model's max_position_embeddings \(model.configuration.maxPositions)")
        }
        return (batches, heldOut)
    }

    /// The token ids of the text file at `path`, encoded whole (no special tokens added).
    static func tokens(of path: String, tokenizer: ByteLevelBPETokenizer) throws(CommandFailure) -> [Int] {
        // The size first: an empty file is reported without being read (Foundation's reader of a
        // file of size 0 leaks its buffer).
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int else {
            throw CommandFailure("--data: cannot read \(path)")
        }
        guard size > 0 else { throw CommandFailure("--data: \(path) is empty") }
        guard let bytes = try? Data(contentsOf: URL(fileURLWithPath: path)) else {
            throw CommandFailure("--data: cannot read \(path)")
        }
        guard let text = String(data: bytes, encoding: .utf8) else {
            throw CommandFailure("--data: \(path) is not UTF-8 text")
        }
        return tokenizer.encode(text, addSpecialTokens: false)
    }

    /// The batches of a `--token-batches` file.
    static func storedBatches(_ path: String, vocabularySize: Int) throws(CommandFailure) -> TrainingBatches {
        let ids: IndexArray
        do {
            let file = try SafeTensors(contentsOf: URL(fileURLWithPath: path))
            guard file.contains("input_ids") else { throw CommandFailure("--token-batches: \(path) has no input_ids tensor") }
            guard [.int64, .int32].contains(try file.dtype(of: "input_ids")) else {
                throw CommandFailure("--token-batches: input_ids must be int64 or int32, got \(try file.dtype(of: "input_ids"))")
            }
            let shape = try file.shape(of: "input_ids")
            guard shape.count == 3, shape[0] >= 1, shape[1] >= 1, shape[2] >= 2 else {
                throw CommandFailure("--token-batches: input_ids must be (steps, batch, sequence length + 1), got \(shape)")
            }
            ids = try IndexArray(shape: shape, indices: file.integers(named: "input_ids"))
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure("--token-batches: cannot read \(path): \(error)")
        }
        if let bad = ids.indices.firstIndex(where: { !(0..<vocabularySize).contains($0) }) {
            throw CommandFailure(
                "--token-batches: input_ids element \(bad) is \(ids.indices[bad]), outside the vocabulary 0..<\(vocabularySize)")
        }
        return TrainingBatches(stored: ids)
    }
}
