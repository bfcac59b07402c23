// swift-tools-version:6.2
//
// swift-attention: fused attention kernels for the CPU (C, in CKernels/) and the Swift API that
// wraps them (Sources/Attention).

import PackageDescription

// MARK: - Build flags for the C kernels

/// Flags for every C file of `CAttention`.
///
/// - `-O3 -ffp-contract=fast`: the kernels are optimised in every configuration, debug included.
///   SwiftPM passes `-O0` to debug builds; unsafe flags are appended after it on the clang command
///   line, so the later `-O3` wins (check with `swift build -v`). Contracting `a * b + c` into FMA
///   is what the micro-kernels are written for; the tests compare with tolerances, not bit for bit.
/// - `-fopenmp` on Linux only: `parallel.c` uses an OpenMP loop when `_OPENMP` is defined. Apple's
///   clang has no OpenMP, and the C code then falls back to its own POSIX-threads pool.
///   (Never `-fopenmp=libgomp`: mixing GNU's runtime with LLVM's in one process breaks.)
let kernelCSettings: [CSetting] = [
    .unsafeFlags(["-O3", "-ffp-contract=fast"]),
    .unsafeFlags(["-fopenmp"], .when(platforms: [.linux])),
]

/// Libraries the C kernels link against.
///
/// - OpenMP runtime on Linux. `-fopenmp` at compile time does not reach the link step that SwiftPM
///   drives, so the runtime is named here. LLVM's runtime is `libomp`, but on Debian the unversioned
///   `libomp.so` lives only in `/usr/lib/llvm-<version>/lib`, outside the linker's search path, so
///   `.linkedLibrary("omp")` fails with "cannot find -lomp", and with no runtime named at all the
///   link fails too (gold crashes on the unresolved `__kmpc_*` calls). `libomp-dev` also installs
///   `libiomp5.so` in the default search path (`/usr/lib/x86_64-linux-gnu`), a symbolic link to
///   the same LLVM runtime (`iomp5` is Intel's name for that ABI), so `-liomp5` finds it and the
///   binary loads `libomp.so.5`. Requires Debian's `libomp-dev` (any LLVM version).
let kernelLinkerSettings: [LinkerSetting] = [
    .linkedLibrary("iomp5", .when(platforms: [.linux])),
]

let package = Package(
    name: "swift-attention",
    // MARK: - Public products
    products: [
        /// Scaled dot-product attention and the `Tensor` it works on.
        .library(name: "Attention", targets: ["Attention"]),
        /// Models built on `Attention`: a BERT encoder read from a Hugging Face model folder, its
        /// WordPiece tokenizer, sentence embeddings as sentence-transformers computes them, a
        /// Llama decoder generating over a key/value cache, and the byte-level BPE tokenizer of
        /// GPT-2, Llama 3 and Qwen2.
        .library(name: "AttentionModels", targets: ["AttentionModels"]),
        /// `attention-embed`: sentence embeddings and their cosine similarities from the command line.
        .executable(name: "attention-embed", targets: ["attention-embed"]),
        /// `attention-generate`: token generation with a Llama model folder from the command line.
        .executable(name: "attention-generate", targets: ["attention-generate"]),
        /// `attention-train`: trains a Llama-architecture model and saves a Hugging Face model folder.
        .executable(name: "attention-train", targets: ["attention-train"]),
    ],
    dependencies: [
        // The commands' argument parsing only: no library target depends on it.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation`: a command plugin, linked into nothing.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // MARK: - Public modules

        /// The Swift API: `Tensor`, `scaledDotProductAttention(query:key:value:...)`, masks,
        /// errors and the backend controls. The C module is imported `internal`, so no C type
        /// appears in the public API.
        .target(
            name: "Attention",
            dependencies: ["CAttention"]
        ),

        /// BERT, WordPiece, the sentence-embedding pipeline, Llama and byte-level BPE, on the public
        /// API of `Attention` only.
        .target(
            name: "AttentionModels",
            dependencies: ["Attention"]
        ),

        /// `attention-embed`'s `main`: `AttentionEmbed` of `AttentionCommands`.
        .executableTarget(
            name: "attention-embed",
            dependencies: ["AttentionCommands"]
        ),

        /// `attention-generate`'s `main`: `AttentionGenerate` of `AttentionCommands`.
        .executableTarget(
            name: "attention-generate",
            dependencies: ["AttentionCommands"]
        ),

        /// `attention-train`'s `main`: `AttentionTrain` of `AttentionCommands`.
        .executableTarget(
            name: "attention-train",
            dependencies: ["AttentionCommands"]
        ),

        /// The three commands, parsed by swift-argument-parser, and what they share: one-line errors
        /// and exit statuses, output files written in place, medians, the thread count, the
        /// allocator policy. A library (not a product) so that tests can parse and run them; with
        /// its tests, the only target that depends on ArgumentParser.
        .target(
            name: "AttentionCommands",
            dependencies: [
                "AttentionModels", "Attention", "CProcessMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        /// The commands' allocator policy: freed activations kept for reuse (glibc's `mallopt`,
        /// which Swift's `Glibc` module does not import).
        .target(name: "CProcessMemory"),

        // MARK: - Implementation details

        /// The C kernels, not a product of their own. Public header: `CKernels/include/attn.h`.
        /// The `*_template.h` files beside the `.c` files (`kernel_table_template.h`, `fused_tile_template.h`, ...) are
        /// included once per instruction set by `kernels_<isa>.c`; headers are never compiled on
        /// their own, so nothing needs excluding.
        .target(
            name: "CAttention",
            path: "CKernels",
            publicHeadersPath: "include",
            cSettings: kernelCSettings,
            linkerSettings: kernelLinkerSettings
        ),

        // MARK: - Tests

        /// Swift Testing tests of the Swift API against a double-precision reference.
        /// `CAttention` is a direct dependency because the tests check the C status mapping.
        .testTarget(
            name: "AttentionTests",
            dependencies: ["Attention", "CAttention"],
            resources: [.copy("Fixtures")]
        ),

        /// Tests of `AttentionModels` against `transformers`, `sentence-transformers` and the
        /// `tokenizers` library, from fixtures (`Fixtures/generate_*_fixtures.py`): no Python needed.
        .testTarget(
            name: "AttentionModelsTests",
            dependencies: ["AttentionModels", "Attention"],
            resources: [.copy("Fixtures")]
        ),

        /// Tests of the commands: parsing, exit statuses, the JSON they write, runs on the tiny
        /// models of `Tests/AttentionModelsTests/Fixtures`, and training against PyTorch's
        /// trajectories (`Fixtures/generate_training_parity_fixtures.py`); fixtures read in place.
        .testTarget(
            name: "AttentionCommandsTests",
            dependencies: [
                "AttentionCommands",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["Fixtures"]
        ),
    ]
)
