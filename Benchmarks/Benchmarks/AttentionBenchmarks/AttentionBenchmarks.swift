// Benchmarks of the Swift API with package-benchmark (ordo-one): wall clock, throughput,
// allocations and peak resident memory for
//
// - scaledDotProductAttention, fused vs unfused, B = 1, H = 8, D = 64;
// - the modules on a (1, 1024, 512) input with 8 heads, self-attention forward:
//   MultiheadAttention (Equinox), MultiHeadDotProductAttention (Flax), TorchMultiheadAttention
//   (PyTorch's nn.MultiheadAttention, batch first, need_weights=False), and a
//   TransformerEncoderLayer (PyTorch's, post-norm, ReLU, feed-forward 2048, inference);
// - Flax-style decoding: 16 one-token steps with the module's KeyValueCache after a 1024-token
//   prompt.
//
//   cd Benchmarks && swift package benchmark                         # all of them
//   swift package benchmark --filter "SDPA.*L=1024"                   # a subset (regular expression)
//   ATTENTION_BENCH_THREADS=1 swift package benchmark                 # thread count for the kernels
//
// The kernels use AttentionBackend.threadCount threads (every core by default).

import Attention
import Benchmark

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `ATTENTION_BENCH_THREADS`, if set, fixes the kernels' thread count for every benchmark.
private func configureThreads() {
    guard let text = getenv("ATTENTION_BENCH_THREADS"), let count = Int(String(cString: text)) else { return }
    do {
        try AttentionBackend.setThreadCount(count)
    } catch {
        fatalError("ATTENTION_BENCH_THREADS=\(count): \(error)")
    }
}

/// Attention FLOPs of one forward pass, 4·B·H·Lq·Lk·D, half when causal (as attn_bench counts).
private func attentionFLOPs(batch: Int = 1, heads: Int, length: Int, dim: Int, causal: Bool) -> Double {
    4 * Double(batch * heads) * Double(length) * Double(length) * Double(dim) * (causal ? 0.5 : 1)
}

private func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + 1e-9 * Double(t.tv_nsec)
}

/// A module, the prefilled cache's contents and the tokens to decode.
private struct DecodeState {
    let attention: MultiHeadDotProductAttention
    let shape: [Int]
    let keys: [Float], values: [Float]
    let tokens: [Tensor]
}

let benchmarks: @Sendable () -> Void = {
    configureThreads()
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        warmupIterations: 1,
        maxDuration: .seconds(2),
        maxIterations: 100
    )
    // GFLOP/s of each SDPA iteration, as a custom metric (larger is better).
    let gflops = BenchmarkMetric.custom("GFLOP/s", polarity: .prefersLarger, useScalingFactor: false)

    // MARK: - scaledDotProductAttention

    let sdpaShapes: [(length: Int, causal: Bool)] = [(256, false), (1024, false), (1024, true), (4096, true)]
    for (length, causal) in sdpaShapes {
        for algorithm in [AttentionAlgorithm.fused, .unfused] {
            let heads = 8, dim = 64
            let flops = attentionFLOPs(heads: heads, length: length, dim: dim, causal: causal)
            let mask: AttentionMask = causal ? .causal(.topLeft) : .unmasked
            Benchmark(
                "SDPA \(algorithm) L=\(length) D=\(dim) H=\(heads)\(causal ? " causal" : "")",
                configuration: .init(metrics: Benchmark.defaultConfiguration.metrics + [gflops])
            ) { (benchmark: Benchmark, qkv: [Tensor]) throws in
                let start = now()
                let out = try scaledDotProductAttention(
                    query: qkv[0], key: qkv[1], value: qkv[2], mask: mask, algorithm: algorithm)
                let seconds = now() - start
                benchmark.stopMeasurement()
                blackHole(out)
                benchmark.measurement(gflops, Int((flops / seconds * 1e-9).rounded()))
            } setup: {
                var rng = SeededGenerator(seed: 1)
                return try (0..<3).map { _ in try Tensor(randomNormal: [1, heads, length, dim], using: &rng) }
            }
        }
    }

    // MARK: - Modules: self-attention forward, (1, 1024, 512), 8 heads

    let (moduleLength, embed, moduleHeads) = (1024, 512, 8)
    let moduleInput: @Sendable () throws -> Tensor = {
        var rng = SeededGenerator(seed: 2)
        return try Tensor(randomNormal: [1, moduleLength, embed], using: &rng)
    }

    Benchmark("MultiheadAttention (Equinox) L=\(moduleLength) E=\(embed) H=\(moduleHeads)") { (_: Benchmark, state: (attention: MultiheadAttention, x: Tensor)) throws in
        blackHole(try state.attention(state.x))
    } setup: {
        var rng = SeededGenerator(seed: 3)
        return (attention: try MultiheadAttention(heads: moduleHeads, querySize: embed, using: &rng), x: try moduleInput())
    }

    Benchmark("MultiHeadDotProductAttention (Flax) L=\(moduleLength) E=\(embed) H=\(moduleHeads)") { (_: Benchmark, state: (attention: MultiHeadDotProductAttention, x: Tensor)) throws in
        blackHole(try state.attention(query: state.x))
    } setup: {
        var rng = SeededGenerator(seed: 4)
        return (
            attention: try MultiHeadDotProductAttention(heads: moduleHeads, inputFeatures: embed, using: &rng),
            x: try moduleInput())
    }

    Benchmark("TorchMultiheadAttention L=\(moduleLength) E=\(embed) H=\(moduleHeads)") {
        (_: Benchmark, state: (attention: TorchMultiheadAttention, x: Tensor)) throws in
        blackHole(try state.attention(query: state.x, key: state.x, value: state.x, needWeights: false).output)
    } setup: {
        var rng = SeededGenerator(seed: 5)
        return (
            attention: try TorchMultiheadAttention(embedDim: embed, heads: moduleHeads, batchFirst: true, using: &rng),
            x: try moduleInput())
    }

    Benchmark("TransformerEncoderLayer L=\(moduleLength) E=\(embed) H=\(moduleHeads) FF=2048") {
        (_: Benchmark, state: (layer: TransformerEncoderLayer, x: Tensor)) throws in
        blackHole(try state.layer(state.x))
    } setup: {
        var rng = SeededGenerator(seed: 7)
        return (
            layer: try TransformerEncoderLayer(
                dModel: embed, heads: moduleHeads, feedForwardSize: 2048, batchFirst: true, using: &rng),
            x: try moduleInput())
    }

    // MARK: - Decoding with the Flax module's cache

    let (prompt, steps, capacity) = (1024, 16, 2048)
    Benchmark(
        "MultiHeadDotProductAttention decode \(steps) steps after \(prompt) tokens E=\(embed) H=\(moduleHeads)"
    ) { (benchmark: Benchmark, state: DecodeState) throws in
        // Each iteration starts from a fresh copy of the prefilled cache, made before the
        // measurement starts (the cache's tensors are copy-on-write, so a shared copy would be
        // copied inside the first step). An explicit start moves the start past it; every stop
        // records a sample, so there is exactly one.
        var cache = try KeyValueCache(
            key: Tensor(shape: state.shape, scalars: state.keys),
            value: Tensor(shape: state.shape, scalars: state.values), index: prompt)
        benchmark.startMeasurement()
        for token in state.tokens {
            blackHole(try state.attention.decode(token, cache: &cache))
        }
        benchmark.stopMeasurement()
        blackHole(cache.index)
    } setup: {
        var rng = SeededGenerator(seed: 6)
        let attention = try MultiHeadDotProductAttention(heads: moduleHeads, inputFeatures: embed, using: &rng)
        var cache = try attention.makeCache(batchShape: [1], maxLength: capacity)
        _ = try attention.decode(try Tensor(randomNormal: [1, prompt, embed], using: &rng), cache: &cache)
        let tokens = try (0..<steps).map { _ in try Tensor(randomNormal: [1, 1, embed], using: &rng) }
        return DecodeState(
            attention: attention, shape: cache.key.shape, keys: cache.key.scalars, values: cache.value.scalars,
            tokens: tokens)
    }
}
