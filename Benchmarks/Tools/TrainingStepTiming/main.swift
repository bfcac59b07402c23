// TrainingStepTiming: one training step (forward, backward, AdamW) of a TransformerEncoder timed
// the way Benchmarks/training/bench_training.py times PyTorch's: the median of several steps after
// two warm-up steps. The loss is the mean squared error against a fixed target, so the step is the
// encoder's own work.
//
//   swift run -c release --package-path Benchmarks TrainingStepTiming [--json] [--threads 2]
//       [--layers 4] [--dmodel 256] [--heads 4] [--ff 1024] [--batch 8] [--length 256] [--steps 5]
//
// Prints a line of text, or with --json one JSON line {"ms": <median>, "forward_ms": ..., ...}.

import Attention

struct Options {
    var json = false
    var threads = 2, layers = 4, dModel = 256, heads = 4, feedForward = 1024, batch = 8, length = 256, steps = 5
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    func number(_ name: String) -> Int {
        guard let text = arguments.next(), let value = Int(text), value > 0 else {
            fatalError("TrainingStepTiming: \(name) needs a positive integer")
        }
        return value
    }
    while let argument = arguments.next() {
        switch argument {
        case "--json": options.json = true
        case "--threads": options.threads = number(argument)
        case "--layers": options.layers = number(argument)
        case "--dmodel": options.dModel = number(argument)
        case "--heads": options.heads = number(argument)
        case "--ff": options.feedForward = number(argument)
        case "--batch": options.batch = number(argument)
        case "--length": options.length = number(argument)
        case "--steps": options.steps = number(argument)
        default:
            fatalError("usage: TrainingStepTiming [--json] [--threads T] [--layers N] [--dmodel E] [--heads H] [--ff F] [--batch B] [--length L] [--steps S]")
        }
    }
    return options
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : 0.5 * (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2])
}

/// The encoder, its data and its optimiser: one training step at a time.
struct Trainer {
    var encoder: TransformerEncoder
    let x: Tensor, target: Tensor
    var optimizer = AdamW(learningRate: 1e-4)

    init(_ options: Options) throws {
        var rng = SeededGenerator(seed: 0)
        let layers = try (0..<options.layers).map { _ in
            try TransformerEncoderLayer(
                dModel: options.dModel, heads: options.heads, feedForwardSize: options.feedForward, dropout: 0,
                batchFirst: true, using: &rng)
        }
        encoder = try TransformerEncoder(layers: layers)
        x = try Tensor(randomNormal: [options.batch, options.length, options.dModel], using: &rng)
        target = try Tensor(randomNormal: x.shape, using: &rng)
    }

    /// One step; returns the seconds of the whole step and of its forward pass.
    mutating func step() throws -> (step: Double, forward: Double) {
        let clock = ContinuousClock()
        let start = clock.now
        let (output, pullback) = try encoder.callWithPullback(x)
        let forward = clock.now
        let loss = try meanSquaredError(prediction: output, target: target)
        try optimizer.update(&encoder, along: try pullback(loss.gradient).parameters)
        let end = clock.now
        return (seconds(end - start), seconds(forward - start))
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

let options = parseOptions()
try AttentionBackend.setThreadCount(options.threads)
var trainer = try Trainer(options)
for _ in 0..<2 { _ = try trainer.step() }
var times: [(step: Double, forward: Double)] = []
for _ in 0..<options.steps { times.append(try trainer.step()) }
let ms = 1e3 * median(times.map(\.step)), forwardMs = 1e3 * median(times.map(\.forward))
if options.json {
    print(
        "{\"ms\": \(ms), \"forward_ms\": \(forwardMs), \"steps\": \(options.steps), \"threads\": \(options.threads), "
            + "\"layers\": \(options.layers), \"d_model\": \(options.dModel), \"heads\": \(options.heads), "
            + "\"ff\": \(options.feedForward), \"batch\": \(options.batch), \"length\": \(options.length)}")
} else {
    print("TransformerEncoder training step: \(ms) ms (forward \(forwardMs) ms), median of \(options.steps)")
}
