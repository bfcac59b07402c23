import Foundation
import Testing
@testable import Attention

// MARK: - Helpers

/// A safetensors file built by hand: the 8-byte length (the header's own unless given), the header
/// text, then the data bytes.
func handBuiltFile(header: String, data: [UInt8] = [], headerLength: UInt64? = nil) -> Data {
    let headerBytes = Array(header.utf8)
    let length = headerLength ?? UInt64(headerBytes.count)
    var bytes = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
    bytes += headerBytes
    bytes += data
    return Data(bytes)
}

/// Expects `body` to throw `AttentionError.invalidCheckpoint` whose reason contains `fragment`.
func expectInvalidCheckpoint(
    _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected invalidCheckpoint containing \"\(fragment)\", nothing was thrown", sourceLocation: sourceLocation)
    } catch let AttentionError.invalidCheckpoint(reason) {
        #expect(reason.contains(fragment), "reason: \(reason)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected invalidCheckpoint containing \"\(fragment)\", got \(error)", sourceLocation: sourceLocation)
    }
}

func fixtureURL(_ name: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"))
}

/// One F32 tensor of shape [2] at [0, 8), with the given entry text replacing the default.
let validEntry = #""x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
let eightBytes: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]  // 1.0, 2.0

@Suite("SafeTensors")
struct SafeTensorsTests {
    // MARK: Round trips

    @Test func roundTripOfEveryDType() throws {
        // Values every dtype holds exactly (integers in range; 0/1 for BOOL).
        let shape = [2, 3]
        let floats: [Float] = [0, 1, -2.5, 0.09375, 1024, -384]
        let unsignedValues: [Float] = [0, 1, 2, 100, 127, 5]
        let signedValues: [Float] = [0, -1, 2, -100, 127, -128]
        for dtype in SafeTensors.DType.allCases {
            let values: [Float] =
                switch dtype {
                case .bool: [0, 1, 1, 0, 1, 0]
                case .uint8, .uint16, .uint32, .uint64: unsignedValues
                case .int8, .int16, .int32, .int64: signedValues
                case .float16, .bfloat16, .float32, .float64: floats
                }
            let tensor = try Tensor(shape: shape, scalars: values)
            var file = SafeTensors(metadata: ["dtype": dtype.rawValue])
            try file.insert(tensor, named: "t", as: dtype)
            let bytes = file.serialized()
            let read = try SafeTensors(data: bytes)
            #expect(read == file, "\(dtype)")
            #expect(try read.dtype(of: "t") == dtype)
            #expect(try read.shape(of: "t") == shape)
            #expect(read.metadata == ["dtype": dtype.rawValue])
            // F16 and BF16 read back as stored, the others as float32.
            #expect(try read.tensor(named: "t").dtype == dtype.tensorDType ?? .float32, "\(dtype)")
            #expect(try read.tensor(named: "t", as: .float32) == tensor, "\(dtype)")
            #expect(try read.booleans(named: "t") == values.map { $0 != 0 }, "\(dtype)")
            if dtype.isFloatingPoint {
                // -2.5 is not an integer.
                #expect(throws: AttentionError.self) { try read.integers(named: "t") }
            } else {
                #expect(try read.integers(named: "t") == values.map { Int($0) }, "\(dtype)")
            }
            // The file is as long as the header plus the data, and the data section is aligned.
            let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            #expect(headerLength % 8 == 0)
            #expect(bytes.count == 8 + headerLength + 6 * dtype.byteSize)
            #expect(bytes[8] == UInt8(ascii: "{"))
        }
    }

    @Test func integersAtTheLimitsOfTheirTypes() throws {
        let cases: [(SafeTensors.DType, [Int])] = [
            (.uint8, [0, 255]), (.int8, [-128, 127]), (.uint16, [0, 65535]), (.int16, [-32768, 32767]),
            (.uint32, [0, 4_294_967_295]), (.int32, [-2_147_483_648, 2_147_483_647]),
            (.uint64, [0, Int.max]), (.int64, [Int.min, Int.max]), (.bool, [0, 1]),
        ]
        for (dtype, values) in cases {
            var file = SafeTensors()
            try file.insert(integers: values, shape: [2], named: "v", as: dtype)
            let read = try SafeTensors(data: file.serialized())
            #expect(try read.integers(named: "v") == values, "\(dtype)")
            #expect(try read.tensor(named: "v").scalars == values.map(Float.init), "\(dtype)")
            // One past the range is refused.
            if dtype != .int64 && dtype != .uint64 {
                #expect(throws: AttentionError.self) {
                    try file.insert(integers: [values[1] + 1, 0], shape: [2], named: "w", as: dtype)
                }
            }
            if dtype != .int64 {
                #expect(throws: AttentionError.self) {
                    try file.insert(integers: [values[0] - 1, 0], shape: [2], named: "w", as: dtype)
                }
            }
        }
        var file = SafeTensors()
        #expect(throws: AttentionError.self) { try file.insert(integers: [1], shape: [1], named: "f", as: .float32) }
        #expect(throws: AttentionError.self) { try file.insert(integers: [1, 2], shape: [3], named: "f") }
    }

    @Test func floatsThatADTypeCannotHoldAreRefused() throws {
        var file = SafeTensors()
        let cases: [(Float, SafeTensors.DType)] = [
            (0.5, .int32), (-1, .uint8), (256, .uint8), (.nan, .int64), (.infinity, .int64), (2, .bool),
            (0x1p63, .int64), (0x1p64, .uint64),
        ]
        for (value, dtype) in cases {
            #expect(throws: AttentionError.self, "\(value) as \(dtype)") {
                try file.insert(Tensor(shape: [1], scalars: [value]), named: "x", as: dtype)
            }
        }
        #expect(!file.contains("x"))
        // The largest values that do fit.
        try file.insert(Tensor(shape: [1], scalars: [0x1p63]), named: "x", as: .uint64)
        #expect(try file.tensor(named: "x").scalars == [0x1p63])
        #expect(throws: AttentionError.self) { try file.integers(named: "x") }   // above Int.max
    }

    @Test func booleansAndMetadataAndNamesRoundTrip() throws {
        let names = ["plain", "with \"quotes\" and \\ backslash", "tab\tnewline\ncontrol\u{01}", "é ✓ 日本", ""]
        var file = SafeTensors(metadata: ["format": "pt", "quote\"key": "line\nbreak \u{7F} ✓"])
        for (index, name) in names.enumerated() {
            try file.insert(booleans: [index % 2 == 0, true, false], shape: [3], named: name)
        }
        try file.insert(Tensor(shape: [], scalars: [4]), named: "scalar")
        try file.insert(Tensor(zeros: [0, 5]), named: "empty", as: .float16)
        let read = try SafeTensors(data: file.serialized())
        #expect(read == file)
        #expect(Set(read.names) == Set(names + ["scalar", "empty"]))
        #expect(read.names == read.names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        #expect(try read.booleans(named: names[2]) == [true, true, false])
        #expect(try read.tensor(named: "scalar").shape == [])
        #expect(try read.tensor(named: "empty").shape == [0, 5])
        #expect(read.metadata["quote\"key"] == "line\nbreak \u{7F} ✓")

        #expect(throws: AttentionError.self) { try file.insert(booleans: [true], shape: [1], named: "__metadata__") }
        #expect(throws: AttentionError.self) { try file.insert(booleans: [true], shape: [2], named: "b") }
        let removed = file.removeTensor(named: "scalar"), removedAgain = file.removeTensor(named: "scalar")
        #expect(removed && !removedAgain)
    }

    @Test func missingNamesAreReportedWithTheNamesThatExist() throws {
        let file = try SafeTensors(["weight": Tensor(zeros: [2])])
        #expect(throws: AttentionError.invalidArgument(
            argument: "name", reason: "no tensor named \"bias\"; the 1 tensors are [\"weight\"]")
        ) {
            try file.tensor(named: "bias")
        }
        #expect(throws: AttentionError.self) { try file.shape(of: "bias") }
        #expect(throws: AttentionError.self) { try file.dtype(of: "bias") }
    }

    @Test func writesAndReadsFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("SafeTensorsTests-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("a.safetensors")
        var rng = SeededGenerator(seed: 1)
        let weight = try Tensor(randomNormal: [16, 8], using: &rng)
        try SafeTensors.write(["w": weight], metadata: ["format": "pt"], to: url)
        let read = try SafeTensors(contentsOf: url)
        #expect(try read.tensor(named: "w") == weight)
        #expect(read.metadata == ["format": "pt"])
        #expect(try read.tensors() == ["w": weight])

        // A damaged file names itself in the error.
        try Data(handBuiltFile(header: "{}").prefix(9)).write(to: url)
        expectInvalidCheckpoint("a.safetensors: the header length 2 runs past the end of the 9-byte file") { _ = try SafeTensors(contentsOf: url) }
        // A missing file is the file system's error.
        #expect(throws: (any Error).self) { try SafeTensors(contentsOf: directory.appendingPathComponent("none")) }
    }

    // MARK: Interoperability

    @Test func readsTheReferenceLibrarysFileExactly() throws {
        let file = try SafeTensors(contentsOf: fixtureURL("interop_safetensors"))
        #expect(file.metadata["format"] == "np")
        #expect(file.metadata["note"] == "quotes \" backslash \\ newline \n unicode é")
        #expect(try file.dtype(of: "bool") == .bool)
        #expect(try file.booleans(named: "bool") == [true, false, true, false, false, true])
        #expect(try file.tensor(named: "bool").shape == [2, 3])
        #expect(try file.integers(named: "u8") == [0, 1, 127, 128, 255])
        #expect(try file.integers(named: "i8") == [-128, -1, 0, 1, 127])
        #expect(try file.integers(named: "u16") == [0, 1, 65535])
        #expect(try file.integers(named: "i16") == [-32768, -1, 0, 32767])
        #expect(try file.integers(named: "u32") == [0, 1, 4_294_967_295])
        #expect(try file.integers(named: "i32") == [-2_147_483_648, -1, 0, 2_147_483_647])
        #expect(try file.integers(named: "u64") == [0, 1, Int.max])
        #expect(try file.integers(named: "i64") == [Int.min, -1, 0, Int.max])
        #expect(try file.shape(of: "i64") == [2, 2])
        #expect(try file.tensor(named: "scalar").shape == [])
        #expect(try file.tensor(named: "scalar").scalars == [3.5])
        #expect(try file.tensor(named: "empty").shape == [0, 3])
        #expect(try file.tensor(named: "name with \"quotes\", é and ✓").scalars == [1, 2])

        // F64 → Float rounds as NumPy's astype(float32) does.
        let f64 = try file.tensor(named: "f64").scalars, numpy = try file.tensor(named: "f64_as_f32").scalars
        #expect(f64.elementsEqualTreatingNaNAsEqual(numpy))

        // Float → F16 and BF16: the same bits as NumPy and ml_dtypes, NaN aside (any NaN).
        let source = try file.tensor(named: "f32_source").scalars
        let f16 = try file.tensor(named: "f16_numpy").scalars
        let bf16 = try file.tensor(named: "bf16_ml_dtypes").scalars
        #expect(source.count == 1936 && f16.count == source.count && bf16.count == source.count)
        var half = SafeTensors(), brain = SafeTensors()
        try half.insert(Tensor(shape: [source.count], scalars: source), named: "x", as: .float16)
        try brain.insert(Tensor(shape: [source.count], scalars: source), named: "x", as: .bfloat16)
        let ours16 = try half.tensor(named: "x").scalars, oursBF = try brain.tensor(named: "x").scalars
        for index in source.indices {
            if source[index].isNaN {
                #expect(f16[index].isNaN && ours16[index].isNaN && bf16[index].isNaN && oursBF[index].isNaN)
            } else {
                #expect(ours16[index].bitPattern == f16[index].bitPattern, "F16 of \(source[index])")
                #expect(oursBF[index].bitPattern == bf16[index].bitPattern, "BF16 of \(source[index])")
            }
        }

        // Written again, it reads back identical (the layout may differ from the reference's).
        #expect(try SafeTensors(data: file.serialized()) == file)
    }

    @Test func readsEveryFixtureOfTheTestSuite() throws {
        let directory = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let urls = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "safetensors" }
        #expect(!urls.isEmpty)
        for url in urls {
            let file = try SafeTensors(contentsOf: url)
            for name in file.names { _ = try file.tensor(named: name) }
            #expect(try SafeTensors(data: file.serialized()) == file, "\(url.lastPathComponent)")
        }
    }

    // MARK: Malformed files

    @Test func rejectsFilesTooShortOrWithABadHeaderLength() {
        expectInvalidCheckpoint("too short") { _ = try SafeTensors(data: Data()) }
        expectInvalidCheckpoint("the file is 7 bytes, too short") { _ = try SafeTensors(data: Data(count: 7)) }
        expectInvalidCheckpoint("the header length 3 runs past the end of the 10-byte file") {
            _ = try SafeTensors(data: handBuiltFile(header: "{}", headerLength: 3))
        }
        expectInvalidCheckpoint("exceeds the limit") {
            _ = try SafeTensors(data: handBuiltFile(header: "{}", headerLength: .max))
        }
        expectInvalidCheckpoint("exceeds the limit") {
            _ = try SafeTensors(data: handBuiltFile(header: "{}", headerLength: 100_000_001))
        }
        expectInvalidCheckpoint("the header is empty") { _ = try SafeTensors(data: handBuiltFile(header: "")) }
        // The smallest valid file: an empty object and no data.
        #expect(throws: Never.self) { try SafeTensors(data: handBuiltFile(header: "{}")) }
        #expect(throws: Never.self) { try SafeTensors(data: handBuiltFile(header: "{}      ")) }
    }

    @Test func rejectsTruncatedFiles() throws {
        let bytes = try SafeTensors(["a": Tensor(ones: [4, 4]), "b": Tensor(ones: [3])]).serialized()
        for cut in [1, 4, 12, 63, 64] {
            expectInvalidCheckpoint("past the end of the") { _ = try SafeTensors(data: bytes.dropLast(cut)) }
        }
        // Cut into the header itself.
        expectInvalidCheckpoint("runs past the end") { _ = try SafeTensors(data: bytes.prefix(40)) }
        // A slice of a larger buffer (a start index other than 0) reads the same.
        let padded = Data([1, 2, 3] + [UInt8](bytes))
        #expect(try SafeTensors(data: padded[3...]) == SafeTensors(data: bytes))
        // Every prefix fails cleanly, none crashes.
        for length in 0..<bytes.count {
            #expect(throws: AttentionError.self) { try SafeTensors(data: bytes.prefix(length)) }
        }
    }

    @Test func rejectsHeadersThatAreNotJSONObjects() {
        let cases: [(String, String)] = [
            ("[1, 2]", "does not start with '{'"),
            (" {}", "does not start with '{'"),
            ("{\"x\": }", "not valid JSON: unexpected '}', expected a value"),
            ("{\"x\": 1,}", "not valid JSON"),                      // trailing comma
            ("{\"x\": 1} {}", "after the end of the value"),
            ("{\"a\": {}, \"a\": {}}", "duplicate key \"a\""),
            ("{\"x\": \"unterminated}", "unterminated string"),
            ("{\"x\": \"\u{01}\"}", "unescaped control character"),
            ("{\"x\": \"\\q\"}", "invalid escape"),
            ("{\"x\": \"\\ud800\"}", "unpaired UTF-16 surrogate"),
            ("{\"x\": 01}", "leading zero"),
            ("{\"x\": tru}", "invalid literal"),
            ("{" + String(repeating: "\"a\":{", count: 100) + String(repeating: "}", count: 101), "nested deeper"),
            ("{\"x\": NaN}", "not valid JSON"),
        ]
        for (header, fragment) in cases {
            expectInvalidCheckpoint(fragment) { _ = try SafeTensors(data: handBuiltFile(header: header)) }
        }
        let invalidUTF8 = Array(#"{"x":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)
        var file = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(invalidUTF8.count) >> (8 * UInt64($0))) }
        file += invalidUTF8
        expectInvalidCheckpoint("not valid UTF-8") { _ = try SafeTensors(data: Data(file)) }
    }

    @Test func rejectsMalformedEntries() {
        let cases: [(entry: String, fragment: String)] = [
            (#""x":[1]"#, "tensor \"x\" is an array, not an object"),
            (#""x":{"shape":[2],"data_offsets":[0,8]}"#, "has no \"dtype\""),
            (#""x":{"dtype":"F32","data_offsets":[0,8]}"#, "has no \"shape\""),
            (#""x":{"dtype":"F32","shape":[2]}"#, "has no \"data_offsets\""),
            (#""x":{"dtype":32,"shape":[2],"data_offsets":[0,8]}"#, "\"dtype\" that is a number"),
            (#""x":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}"#, "unknown or unsupported dtype \"F8_E4M3\""),
            (#""x":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}"#, "unsupported dtype \"f32\""),
            (#""x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}"#, "\"shape\" that is a number"),
            (#""x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#, "-2, which is negative"),
            (#""x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#, "2.0, not an integer"),
            (#""x":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}"#, "2e0, not an integer"),
            (#""x":{"dtype":"F32","shape":[true],"data_offsets":[0,8]}"#, "a boolean, not an integer"),
            (#""x":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}"#, "a string, not an integer"),
            (#""x":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}"#, "does not fit in Int"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":[0]}"#, "not an array of two integers"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}"#, "not an array of two integers"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":{"begin":0}}"#, "not an array of two integers"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}"#, "data_offsets[0] equal to -1, which is negative"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}"#, "data_offsets[1] equal to 8.5"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}"#, "[8, 0] with begin > end"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}"#, "past the end of the 8-byte data section"),
            (#""x":{"dtype":"F32","shape":[2],"data_offsets":[0,9223372036854775807]}"#, "past the end"),
            (#""x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}"#, "spanning 8 bytes, but shape [3] of F32 needs 12"),
            (#""x":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}"#, "needs 4"),
            (#""x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}"#, "does not fit in Int"),
            (#""x":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}"#, "does not fit in Int"),
            (#""x":{"dtype":"F64","shape":[3037000500,3037000500],"data_offsets":[0,8]}"#, "does not fit in Int"),
            (#""__metadata__":{"a":1},"# + validEntry, "__metadata__[\"a\"] is a number"),
            (#""__metadata__":["a"],"# + validEntry, "__metadata__ is an array"),
        ]
        for (entry, fragment) in cases {
            expectInvalidCheckpoint(fragment) {
                _ = try SafeTensors(data: handBuiltFile(header: "{\(entry)}", data: eightBytes))
            }
        }
        // A zero dimension makes any other dimension harmless, and null metadata is no metadata.
        #expect(throws: Never.self) {
            try SafeTensors(data: handBuiltFile(
                header: #"{"__metadata__":null,"z":{"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[8,8]},"# + validEntry + "}",
                data: eightBytes))
        }
        // Unknown fields of an entry are ignored, as the reference implementation does.
        #expect(throws: Never.self) {
            try SafeTensors(data: handBuiltFile(
                header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":[1]}}"#, data: eightBytes))
        }
    }

    @Test func rejectsOverlapsHolesAndTrailingBytes() throws {
        func entry(_ name: String, _ begin: Int, _ end: Int) -> String {
            #""\#(name)":{"dtype":"U8","shape":[\#(end - begin)],"data_offsets":[\#(begin),\#(end)]}"#
        }
        let data = [UInt8](repeating: 7, count: 8)
        let cases: [([String], String)] = [
            ([entry("a", 0, 6), entry("b", 4, 8)], "tensors \"a\" [0, 6] and \"b\" [4, 8] overlap"),
            ([entry("a", 0, 8), entry("b", 0, 8)], "overlap"),
            ([entry("a", 0, 8), entry("b", 3, 3)], "overlap"),            // empty, but inside a
            ([entry("a", 0, 4), entry("b", 5, 8)], "bytes [4, 5) of the data section belong to no tensor"),
            ([entry("a", 2, 8)], "bytes [0, 2) of the data section belong to no tensor"),
            ([entry("a", 0, 6)], "bytes [6, 8) at the end of the data section belong to no tensor"),
            ([], "bytes [0, 8) at the end"),
        ]
        for (entries, fragment) in cases {
            expectInvalidCheckpoint(fragment) {
                _ = try SafeTensors(data: handBuiltFile(header: "{" + entries.joined(separator: ",") + "}", data: data))
            }
        }
        // Tiling in any order is fine, empty tensors at boundaries included.
        let read = try SafeTensors(data: handBuiltFile(
            header: "{" + [entry("b", 4, 8), entry("e", 4, 4), entry("a", 0, 4), entry("z", 8, 8)].joined(separator: ",") + "}",
            data: [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(try read.integers(named: "a") == [1, 2, 3, 4])
        #expect(try read.integers(named: "b") == [5, 6, 7, 8])
        #expect(try read.integers(named: "e") == [])
    }

    @Test func fuzzedHeadersNeverCrash() throws {
        // Random single-byte corruptions of a valid file: each either reads or throws.
        let bytes = try SafeTensors(
            ["w": Tensor(ones: [3, 2]), "b": Tensor(zeros: [2])], metadata: ["k": "v"]
        ).serialized()
        var rng = SeededGenerator(seed: 99)
        for _ in 0..<2000 {
            var corrupted = [UInt8](bytes)
            let position = Int.random(in: 0..<corrupted.count, using: &rng)
            corrupted[position] = UInt8.random(in: 0...255, using: &rng)
            if Bool.random(using: &rng) { corrupted.removeLast(Int.random(in: 0...8, using: &rng)) }
            do {
                let file = try SafeTensors(data: Data(corrupted))
                for name in file.names { _ = try file.tensor(named: name) }
            } catch is AttentionError {
                // expected for most corruptions
            }
        }
    }

    // MARK: Half precision

    @Test func halfPrecisionSpecialValues() {
        // binary16 → Float: exact.
        #expect(floatFromHalfBits(0x0000).bitPattern == (0 as Float).bitPattern)
        #expect(floatFromHalfBits(0x8000).bitPattern == (-0.0 as Float).bitPattern)
        #expect(floatFromHalfBits(0x3C00) == 1)
        #expect(floatFromHalfBits(0xC000) == -2)
        #expect(floatFromHalfBits(0x7BFF) == 65504)
        #expect(floatFromHalfBits(0x0400) == 0x1p-14)        // smallest normal
        #expect(floatFromHalfBits(0x03FF) == 0x1p-14 - 0x1p-24)  // largest subnormal
        #expect(floatFromHalfBits(0x0001) == 0x1p-24)        // smallest subnormal
        #expect(floatFromHalfBits(0x8001) == -0x1p-24)
        #expect(floatFromHalfBits(0x7C00) == .infinity)
        #expect(floatFromHalfBits(0xFC00) == -.infinity)
        #expect(floatFromHalfBits(0x7E00).isNaN)
        #expect(floatFromHalfBits(0x7C01).isNaN)               // signalling NaN stays NaN
        #expect(floatFromHalfBits(0xFE00).sign == .minus)

        // Float → binary16: round to nearest, ties to even.
        let cases: [(Float, UInt16)] = [
            (0, 0x0000), (-0.0, 0x8000), (1, 0x3C00), (-2, 0xC000), (65504, 0x7BFF),
            (65519.996, 0x7BFF), (65520, 0x7C00), (1e10, 0x7C00), (-1e10, 0xFC00),
            (.infinity, 0x7C00), (-.infinity, 0xFC00), (.greatestFiniteMagnitude, 0x7C00),
            (0x1p-14, 0x0400), (0x1p-24, 0x0001), (0x1p-25, 0x0000), (0x1.000002p-25, 0x0001),
            (-0x1p-25, 0x8000), (0x1.8p-24, 0x0002), (0x1p-26, 0x0000), (0x1p-14 - 0x1p-25, 0x0400),
            (1 + 0x1p-11, 0x3C00), (1 + 0x3p-11, 0x3C02), (Float(bitPattern: 0x3F80_1001), 0x3C01),
            (.leastNonzeroMagnitude, 0x0000), (.leastNormalMagnitude, 0x0000), (0.1, 0x2E66),
        ]
        for (value, bits) in cases {
            #expect(halfBits(from: value) == bits, "\(value)")
        }
        #expect(halfBits(from: .nan) & 0x7FFF == 0x7E00)
        #expect(halfBits(from: -Float.nan) == 0xFE00)
        #expect(halfBits(from: Float(bitPattern: 0x7F80_0001)) & 0x7C00 == 0x7C00)  // sNaN stays NaN
        #expect(halfBits(from: Float(bitPattern: 0x7F80_0001)) & 0x03FF != 0)

        // Every binary16 value survives Float and back (NaNs stay NaN with their sign).
        for bits in UInt16.min...UInt16.max {
            let value = floatFromHalfBits(bits)
            if value.isNaN {
                #expect(halfBits(from: value) & 0x8000 == bits & 0x8000)
                #expect(floatFromHalfBits(halfBits(from: value)).isNaN)
            } else if halfBits(from: value) != bits {
                Issue.record("binary16 0x\(String(bits, radix: 16)) → \(value) → 0x\(String(halfBits(from: value), radix: 16))")
            }
        }
    }

    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    @Test func halfPrecisionMatchesFloat16() {
        // Swift's Float16, where it exists, is a second reference for rounding.
        var rng = SeededGenerator(seed: 16)
        var mismatches = 0
        for _ in 0..<200_000 {
            // Exponents around binary16's range, random fraction and sign.
            let exponent = UInt32.random(in: (127 - 28)...(127 + 17), using: &rng)
            let bits = UInt32.random(in: 0...1, using: &rng) << 31 | exponent << 23
                | UInt32.random(in: 0..<(1 << 23), using: &rng)
            let value = Float(bitPattern: bits)
            if halfBits(from: value) != Float16(value).bitPattern {
                mismatches += 1
                if mismatches < 5 {
                    Issue.record("\(value): ours 0x\(String(halfBits(from: value), radix: 16)), Float16 0x\(String(Float16(value).bitPattern, radix: 16))")
                }
            }
            let half = UInt16(truncatingIfNeeded: bits)
            let reference = Float(Float16(bitPattern: half))
            if !(floatFromHalfBits(half).bitPattern == reference.bitPattern || reference.isNaN) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }
    #endif

    @Test func bfloat16SpecialValues() {
        let cases: [(Float, UInt16)] = [
            (0, 0x0000), (-0.0, 0x8000), (1, 0x3F80), (-2, 0xC000), (.infinity, 0x7F80), (-.infinity, 0xFF80),
            (1 + 0x1p-8, 0x3F80), (1 + 0x3p-8, 0x3F82), (Float(bitPattern: 0x3F80_8001), 0x3F81),
            (.greatestFiniteMagnitude, 0x7F80), (-.greatestFiniteMagnitude, 0xFF80),
            (Float(bitPattern: 0x7F7F_7FFF), 0x7F7F),               // rounds down to the largest bfloat16
            (.leastNonzeroMagnitude, 0x0000), (Float(bitPattern: 0x0000_8001), 0x0001),   // subnormals round too
            (0.1, 0x3DCD),
        ]
        for (value, bits) in cases {
            #expect(bfloat16Bits(from: value) == bits, "\(value)")
        }
        #expect(bfloat16Bits(from: .nan) & 0x7FC0 == 0x7FC0)
        #expect(bfloat16Bits(from: -Float.nan) & 0x8000 == 0x8000)
        #expect(floatFromBFloat16Bits(bfloat16Bits(from: Float(bitPattern: 0x7F80_0001))).isNaN)  // sNaN, low payload
        for bits in UInt16.min...UInt16.max {
            let value = floatFromBFloat16Bits(bits)
            if value.bitPattern != UInt32(bits) << 16 || (!value.isNaN && bfloat16Bits(from: value) != bits) {
                Issue.record("bfloat16 0x\(String(bits, radix: 16)) does not survive a round trip")
            }
        }
    }
}
