// swift-tools-version:6.2
//
// Benchmarks of swift-attention with ordo-one's benchmark package (formerly package-benchmark).
// A package of its own, so that users of the library never resolve or fetch the benchmark
// dependencies.
//
//   cd Benchmarks && swift package benchmark                      # every benchmark
//   swift package benchmark --filter "SDPA.*"                      # a subset (regular expression)
//   swift package benchmark list
//   swift run -c release ModuleTiming --json   # one TorchMultiheadAttention forward (see peers/)
//   swift run -c release TrainingStepTiming --json   # one encoder training step (see training/)

import PackageDescription

let package = Package(
    name: "swift-attention-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "swift-attention", path: ".."),
        // The allocation counters come from the malloc interposer, which is a trait of the package.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "AttentionBenchmarks",
            dependencies: [
                .product(name: "Attention", package: "swift-attention"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/AttentionBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        /// Times one TorchMultiheadAttention forward pass and prints it (JSON with --json), for the
        /// module-level comparison of Benchmarks/peers/bench_peers.py. Not a benchmark
        /// suite: it lives outside Benchmarks/Benchmarks/, so the plugin does not run it.
        .executableTarget(
            name: "ModuleTiming",
            dependencies: [.product(name: "Attention", package: "swift-attention")],
            path: "Tools/ModuleTiming"
        ),
        /// Times one training step (forward, backward, AdamW) of a TransformerEncoder, for
        /// Benchmarks/training/bench_training.py. Not a benchmark suite, as ModuleTiming.
        .executableTarget(
            name: "TrainingStepTiming",
            dependencies: [.product(name: "Attention", package: "swift-attention")],
            path: "Tools/TrainingStepTiming"
        ),
    ]
)
