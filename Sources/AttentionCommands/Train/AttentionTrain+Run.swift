import ArgumentParser
import Attention
import AttentionModels
import Foundation

extension AttentionTrain {
    /// Trains for the steps of `--steps`, reporting each, saving checkpoints along the way and
    /// the model folder at the end.
    ///
    /// - Throws: ``CommandFailure`` for a model, tokenizer or data that cannot be used, a
    ///   checkpoint whose run used other batches, a loss or gradient that is not finite (naming
    ///   the step and the checkpoint kept), or a file that cannot be written.
    package func run() throws {
        try threads.apply()
        let output = URL(fileURLWithPath: self.output)
        let resumed = try resume.map { try TrainingCheckpoint(contentsOf: URL(fileURLWithPath: $0)) }
        let seed = self.seed ?? resumed?.seed ?? 0
        var model = try loadModel(seed: seed)
        let tokenizer = try loadTokenizer(vocabularySize: model.configuration.vocabularySize)
        let (batches, heldOut) = try loadBatches(tokenizer: tokenizer, model: model, resumed: resumed)
        let totalSteps = steps ?? batches.count
        if tokenBatches != nil && totalSteps > batches.count {
            throw CommandFailure("--steps \(totalSteps) exceeds the \(batches.count) batches of --token-batches")
        }
        var optimizer = self.optimizer.makeOptimizer()
        let schedule = try self.optimizer.makeSchedule(steps: totalSteps)
        var start = TrainingCheckpoint(
            step: 0, dataPosition: 0, batchSize: batches.batchSize, sequenceLength: batches.sequenceLength, seed: seed)
        if let resumed, let resume {
            try Self.check(resumed, continuedBy: start, steps: totalSteps)
            do {
                try optimizer.loadState(from: URL(fileURLWithPath: resume).appendingPathComponent("optimizer.safetensors"))
            } catch {
                throw CommandFailure("--resume: cannot read the optimiser's state in \(resume): \(error)")
            }
            (start.step, start.dataPosition) = (resumed.step, resumed.dataPosition)
        }
        var progress = try TrainingProgress(logPath: reporting.log, appending: resumed != nil, totalSteps: totalSteps)
        var lastCheckpoint = resume
        for step in start.step..<totalSteps {
            optimizer.learningRate = schedule.rate(atStep: step)
            let batch = try batches.batch(at: start.dataPosition + step - start.step)
            let began = ContinuousClock.now
            var record = try train(&model, with: &optimizer, on: batch, step: step, keeping: lastCheckpoint)
            let seconds = AttentionGenerate.seconds(ContinuousClock.now - began)
            record.tokensPerSecond = Double(batch.inputs.count) / seconds
            let done = step + 1
            if let interval = reporting.evaluationInterval, done % interval == 0 || done == totalSteps {
                record.evaluationLoss = try Self.meanLoss(of: computing(model), on: heldOut)
            }
            try progress.report(record, seconds: seconds)
            if let interval = reporting.saveInterval, done % interval == 0 {
                var state = start
                (state.step, state.dataPosition) = (done, start.dataPosition + done - start.step)
                let folder = TrainingCheckpoint.folder(step: done, in: output)
                try state.write(model: model, tokenizer: tokenizer, optimizer: optimizer, to: folder)
                lastCheckpoint = folder.path
            }
        }
        do {
            try model.write(to: output, dtype: reporting.saveType.dtype)
            try tokenizer.write(to: output)
        } catch {
            throw CommandFailure("cannot save the model in \(output.path): \(error)")
        }
    }

    /// One step: the loss of the batch, the gradients, their norm (clipped), AdamW's update.
    ///
    /// - Throws: ``CommandFailure`` when the loss or the gradients are not finite (the update is
    ///   then not applied), naming the step and the checkpoint kept.
    private func train(
        _ model: inout LlamaForCausalLM, with optimizer: inout AdamW, on batch: TrainingBatches.Batch, step: Int,
        keeping checkpoint: String?
    ) throws -> TrainingRecord {
        func stop(_ what: String) -> CommandFailure {
            CommandFailure(
                "\(what) at step \(step); stopped without applying it, "
                    + (checkpoint.map { "the last checkpoint \($0) is kept" } ?? "no checkpoint was saved (see --save-every)"))
        }
        let (logits, pullback) = try computing(model).callWithPullback(batch.inputs)
        let loss = try crossEntropy(logits: consume logits, targets: batch.targets)
        let value = loss.value.scalars[0]
        guard value.isFinite else { throw stop("the loss is \(value)") }
        var gradients = try pullback(loss.gradient).parameters
        let norm: Float
        do {
            let bound = self.optimizer.maxGradientNorm
            norm = try bound > 0 ? clipGradientNorm(&gradients, maxNorm: bound) : gradientNorm(gradients)
            try optimizer.update(&model, along: gradients)
        } catch let AttentionError.invalidArgument(argument, reason) where argument == "gradients" {
            throw stop("the gradients are not finite (\(reason))")
        }
        return TrainingRecord(
            step: step, loss: value, gradientNorm: norm, learningRate: optimizer.learningRate, tokensPerSecond: 0)
    }

    /// The model the step computes with: the master weights themselves, or with `--precision
    /// bf16` their bf16 copy multiplying in bf16 pairs (whose float32 gradients update the master
    /// weights).
    private func computing(_ model: LlamaForCausalLM) throws -> LlamaForCausalLM {
        guard precision == .bf16 else { return model }
        var copy = try model.convertingWeights(to: .bfloat16)
        copy.products = .bfloat16
        return copy
    }

    /// Whether a resumed run continues the checkpoint's: the same batches in the same order,
    /// and steps left to take.
    private static func check(_ checkpoint: TrainingCheckpoint, continuedBy run: TrainingCheckpoint, steps: Int) throws {
        for (option, saved, given) in [
            ("--batch-size", checkpoint.batchSize, run.batchSize), ("--sequence-length", checkpoint.sequenceLength, run.sequenceLength),
        ] where saved != given {
            throw CommandFailure("--resume: the checkpoint's run used \(option) \(saved), this one \(given)")
        }
        guard checkpoint.seed == run.seed else {
            throw CommandFailure("--resume: the checkpoint's run used --seed \(checkpoint.seed), this one \(run.seed)")
        }
        guard checkpoint.step < steps else {
            throw CommandFailure("--steps \(steps): the checkpoint has already taken \(checkpoint.step) steps")
        }
    }

    /// The mean next-token loss of `model` over the held-out batches.
    private static func meanLoss(of model: LlamaForCausalLM, on batches: [TrainingBatches.Batch]) throws -> Float {
        var (total, count) = (0.0, 0)
        for batch in batches {
            let loss = try crossEntropy(logits: model(batch.inputs), targets: batch.targets, reduction: .sum)
            total += Double(loss.value.scalars[0])
            count += batch.targets.count
        }
        return Float(total / Double(max(count, 1)))
    }
}
