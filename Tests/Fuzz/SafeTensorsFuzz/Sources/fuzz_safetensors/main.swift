// fuzz_safetensors: a libFuzzer target for `SafeTensors(data:)` and everything a parsed file offers.
//
// For any bytes:
//   - `SafeTensors(data:)` either succeeds or throws `AttentionError.invalidCheckpoint` (nothing else,
//     and never a trap);
//   - the same bytes as a slice whose indices do not start at 0 give the same result;
//   - for a file it accepted, every tensor's `shape(of:)` and `dtype(of:)` are available,
//     `tensor(named:)` gives a tensor of that shape (or `.outOfMemory`), `booleans(named:)` gives
//     one value per element, `integers(named:)` one per element or `.invalidArgument`;
//   - `serialized()` reads back as an equal value, and serialising that gives the same bytes.
// Any other outcome stops with a message (a crash for libFuzzer, which saves the input).

import Attention
import Foundation
import FuzzerDriver

func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz_safetensors: \(message())") }
}

/// Parses `data`; nil when it is rejected with `.invalidCheckpoint`; stops on any other error.
func parse(_ data: Data) -> SafeTensors? {
    do {
        return try SafeTensors(data: data)
    } catch AttentionError.invalidCheckpoint {
        return nil
    } catch {
        fatalError("fuzz_safetensors: SafeTensors(data:) threw \(error), not .invalidCheckpoint")
    }
}

func exercise(_ file: SafeTensors) {
    for name in file.names {
        check(file.contains(name), "names lists \(name) but contains() says no")
        let shape: [Int], dtype: SafeTensors.DType
        do {
            shape = try file.shape(of: name)
            dtype = try file.dtype(of: name)
        } catch {
            fatalError("fuzz_safetensors: shape/dtype of listed tensor \(name) threw \(error)")
        }
        check(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        do {
            let tensor = try file.tensor(named: name)
            check(tensor.shape == shape, "tensor(named: \(name)) has shape \(tensor.shape), header says \(shape)")
            check(tensor.count == count, "tensor(named: \(name)) has \(tensor.count) elements, shape \(shape)")
        } catch AttentionError.outOfMemory {
        } catch {
            fatalError("fuzz_safetensors: tensor(named: \(name)) (\(dtype), \(shape)) threw \(error)")
        }
        do {
            let booleans = try file.booleans(named: name)
            check(booleans.count == count, "booleans(named: \(name)) gave \(booleans.count) values for \(shape)")
        } catch {
            fatalError("fuzz_safetensors: booleans(named: \(name)) threw \(error)")
        }
        do {
            let integers = try file.integers(named: name)
            check(integers.count == count, "integers(named: \(name)) gave \(integers.count) values for \(shape)")
        } catch AttentionError.invalidArgument {
        } catch {
            fatalError("fuzz_safetensors: integers(named: \(name)) threw \(error)")
        }
    }
    check(!file.contains("\u{1}no such tensor"), "contains() of a name that is not there")
    do {
        _ = try file.tensor(named: "\u{1}no such tensor")
        fatalError("fuzz_safetensors: tensor(named:) of a missing name did not throw")
    } catch AttentionError.invalidArgument {
    } catch {
        fatalError("fuzz_safetensors: tensor(named:) of a missing name threw \(error)")
    }
}

func fuzzSafeTensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count > 0 && start != nil ? Data(bytes: start!, count: count) : Data()
    let file = parse(data)

    // The same bytes at indices 3..<3+count of a larger buffer.
    var padded = Data([0xAB, 0xCD, 0xEF])
    padded.append(data)
    let slice = padded[3...]
    let fromSlice = parse(slice)
    check((file == nil) == (fromSlice == nil), "a slice of the same bytes was \(file == nil ? "accepted" : "rejected")")
    if let file, let fromSlice { check(file == fromSlice, "a slice of the same bytes parsed differently") }

    guard let file else { return 0 }
    exercise(file)
    let bytes = file.serialized()
    guard let again = parse(bytes) else { fatalError("fuzz_safetensors: serialized() is not readable") }
    check(again == file, "serialized() read back differently")
    check(again.serialized() == bytes, "serializing twice gave different bytes")
    return 0
}

// libFuzzer's driver, with this program's arguments (corpus directories, -max_total_time=...).
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(fuzz_run_driver(&argc, &argv) { data, size in fuzzSafeTensors(data, size) })
