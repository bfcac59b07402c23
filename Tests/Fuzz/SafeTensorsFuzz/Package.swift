// swift-tools-version:6.2
//
// The libFuzzer target for the safetensors reader, in a package of its own so that users of
// swift-attention never build it: it depends on the main package by path. Built by `make fuzz`:
//
//   swift build --package-path Tests/Fuzz/SafeTensorsFuzz --scratch-path build/fuzz/swift -c release \
//       --sanitize=address -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld
//
// The executable's main hands its arguments to libFuzzer (LLVMFuzzerRunDriver, through the small C
// target FuzzerDriver), so it takes libFuzzer's usual flags and corpus directories.

import PackageDescription

let package = Package(
    name: "SafeTensorsFuzz",
    dependencies: [
        .package(name: "swift-attention", path: "../../.."),
    ],
    targets: [
        .target(name: "FuzzerDriver"),
        .executableTarget(
            name: "fuzz_safetensors",
            dependencies: ["FuzzerDriver", .product(name: "Attention", package: "swift-attention")]
        ),
    ]
)
