// ModuleTiming: one module forward pass timed the way Benchmarks/peers/bench_peers.py times
// torch.nn.MultiheadAttention, for the module-level comparison it prints: self-attention on
// (1, L, E), median of 3 to 9 calls (about one second) after two warm-up calls.
//
//   swift run -c release --package-path Benchmarks ModuleTiming [--json] [--threads 2]
//       [--length 1024] [--embed 512] [--heads 8] [--reps N]
//
// Prints a line of text, or with --json one JSON line {"module": ..., "ms": <median>, ...}.

import Attention

struct Options {
    var json = false
    var threads = 2
    var length = 1024
    var embed = 512
    var heads = 8
    var reps = 0
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    func number(_ name: String) -> Int {
        guard let text = arguments.next(), let value = Int(text), value > 0 else {
            fatalError("ModuleTiming: \(name) needs a positive integer")
        }
        return value
    }
    while let argument = arguments.next() {
        switch argument {
        case "--json": options.json = true
        case "--threads": options.threads = number(argument)
        case "--length": options.length = number(argument)
        case "--embed": options.embed = number(argument)
        case "--heads": options.heads = number(argument)
        case "--reps": options.reps = number(argument)
        default:
            fatalError("usage: ModuleTiming [--json] [--threads T] [--length L] [--embed E] [--heads H] [--reps N]")
        }
    }
    return options
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let elapsed = try clock.measure(body)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let n = sorted.count
    return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
}

let options = parseOptions()
try AttentionBackend.setThreadCount(options.threads)
var rng = SeededGenerator(seed: 0)
let attention = try TorchMultiheadAttention(
    embedDim: options.embed, heads: options.heads, batchFirst: true, using: &rng)
let x = try Tensor(randomNormal: [1, options.length, options.embed], using: &rng)

func forward() throws {
    let output = try attention(query: x, key: x, value: x, needWeights: false).output
    precondition(output.shape == [1, options.length, options.embed])
}

try forward()
let warm = try seconds(forward)
let reps = options.reps > 0 ? options.reps : max(3, min(9, Int(1.0 / max(warm, 1e-9))))
var times: [Double] = []
for _ in 0..<reps {
    times.append(try seconds(forward))
}
let ms = 1e3 * median(times)
if options.json {
    print(
        "{\"module\": \"TorchMultiheadAttention\", \"ms\": \(ms), \"runs\": \(reps), \"threads\": \(options.threads), "
            + "\"length\": \(options.length), \"embed\": \(options.embed), \"heads\": \(options.heads), "
            + "\"isa\": \"\(AttentionBackend.instructionSet)\"}")
} else {
    print(
        "TorchMultiheadAttention self-attention (1, \(options.length), \(options.embed)), \(options.heads) heads, "
            + "\(options.threads) threads: \(ms) ms (median of \(reps), isa \(AttentionBackend.instructionSet))")
}
