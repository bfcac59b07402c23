// Conversion of a tensor's stored bytes (little-endian, any supported dtype) to and from `Float`,
// `Bool` and `Int` values.

extension SafeTensors.DType {
    /// Element `index` of little-endian `bytes` of a boolean or integer type as an `Int64`; `nil`
    /// for a `U64` above `Int64.max` and for floating-point types.
    @inline(__always)
    private func loadInteger(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> Int64? {
        switch self {
        case .bool, .uint8: Int64(bytes.loadUnaligned(fromByteOffset: index, as: UInt8.self))
        case .int8: Int64(bytes.loadUnaligned(fromByteOffset: index, as: Int8.self))
        case .uint16: Int64(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)))
        case .int16: Int64(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * index, as: Int16.self)))
        case .uint32: Int64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self)))
        case .int32: Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * index, as: Int32.self)))
        case .int64: Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * index, as: Int64.self))
        case .uint64: Int64(exactly: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self)))
        case .float16, .bfloat16, .float32, .float64: nil
        }
    }

    /// Converts `count` little-endian elements of this type in `bytes` to `Float`, into `output`.
    /// Half-precision types and booleans convert exactly; `F64` and integers round to nearest.
    func decode(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>) {
        let count = output.count
        precondition(bytes.count == count * byteSize)
        switch self {
        case .float32:
            if UInt32(1).littleEndian == 1 {
                if count > 0 { UnsafeMutableRawBufferPointer(output).copyMemory(from: bytes) }
            } else {
                for i in 0..<count {
                    output[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            }
        case .float16:
            for i in 0..<count {
                output[i] = floatFromHalfBits(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bfloat16:
            for i in 0..<count {
                output[i] = floatFromBFloat16Bits(
                    UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .float64:
            for i in 0..<count {
                output[i] = Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case .bool:
            for i in 0..<count { output[i] = bytes[i] != 0 ? 1 : 0 }
        case .uint64:
            for i in 0..<count {
                output[i] = Float(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
            }
        case .uint8, .int8, .uint16, .int16, .uint32, .int32, .int64:
            for i in 0..<count { output[i] = Float(loadInteger(bytes, i)!) }
        }
    }

    /// The elements as booleans: nonzero is `true` (for floating-point types, NaN is `true`, as
    /// in NumPy's `astype(bool)`).
    func decodeBooleans(_ bytes: UnsafeRawBufferPointer, count: Int) -> [Bool] {
        precondition(bytes.count == count * byteSize)
        switch self {
        case .bool, .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64:
            // Nonzero in any byte of the element.
            return (0..<count).map { index in
                (0..<byteSize).contains { bytes[index * byteSize + $0] != 0 }
            }
        case .float16, .bfloat16, .float32, .float64:
            let floats = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                decode(bytes, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
                initialized = count
            }
            return floats.map { $0 != 0 }
        }
    }

    /// The elements as integers, or the index of the first that is not an integer representable
    /// in `Int` (a `U64` above `Int.max`, a fractional, infinite or NaN float, a float beyond
    /// `Int`'s range).
    func decodeIntegers(_ bytes: UnsafeRawBufferPointer, count: Int) -> Result<[Int], IndexedFailure> {
        precondition(bytes.count == count * byteSize)
        var result: [Int] = []
        result.reserveCapacity(count)
        if isInteger || self == .bool {
            for i in 0..<count {
                guard let value = loadInteger(bytes, i), let integer = Int(exactly: value) else {
                    return .failure(IndexedFailure(index: i))
                }
                result.append(integer)
            }
        } else if self == .float64 {
            for i in 0..<count {
                let value = Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                guard let integer = Int(exactly: value) else { return .failure(IndexedFailure(index: i)) }
                result.append(integer)
            }
        } else {
            var floats = [Float](repeating: 0, count: count)
            floats.withUnsafeMutableBufferPointer { decode(bytes, into: $0) }
            for (i, value) in floats.enumerated() {
                guard let integer = Int(exactly: value) else { return .failure(IndexedFailure(index: i)) }
                result.append(integer)
            }
        }
        return .success(result)
    }

    /// The position of the first element that could not be converted.
    struct IndexedFailure: Error {
        var index: Int
    }

    /// Stores `values` as little-endian elements of this type into `bytes`, or returns the index
    /// of the first value this type cannot hold: floating-point types round to nearest even
    /// (`F16`/`BF16` overflow to infinity, as NumPy and PyTorch do); integer types need an integral
    /// value in range; `BOOL` needs 0 or 1.
    func encode(
        _ values: UnsafeBufferPointer<Float>, into bytes: UnsafeMutableRawBufferPointer
    ) -> Result<Void, IndexedFailure> {
        let count = values.count
        precondition(bytes.count == count * byteSize)
        switch self {
        case .float32:
            if UInt32(1).littleEndian == 1 {
                if count > 0 { bytes.copyMemory(from: UnsafeRawBufferPointer(values)) }
            } else {
                for i in 0..<count {
                    bytes.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
            }
        case .float16:
            for i in 0..<count {
                bytes.storeBytes(of: halfBits(from: values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case .bfloat16:
            for i in 0..<count {
                bytes.storeBytes(of: bfloat16Bits(from: values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case .float64:
            for i in 0..<count {
                bytes.storeBytes(of: Double(values[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
            }
        case .bool:
            for i in 0..<count {
                guard values[i] == 0 || values[i] == 1 else { return .failure(IndexedFailure(index: i)) }
                bytes[i] = values[i] == 1 ? 1 : 0
            }
        case .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64:
            for i in 0..<count {
                // Every Float beyond Int64's range is also beyond the integer types' ranges except
                // U64's upper half; those go through UInt64.
                if let integer = Int64(exactly: values[i]) {
                    guard storeInteger(integer, at: i, into: bytes) else { return .failure(IndexedFailure(index: i)) }
                } else if self == .uint64, let integer = UInt64(exactly: values[i]) {
                    bytes.storeBytes(of: integer.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
                } else {
                    return .failure(IndexedFailure(index: i))
                }
            }
        }
        return .success(())
    }

    /// Stores an integer as element `index` of an integer or boolean type; `false` when this type
    /// cannot hold it (out of range, or a floating-point type).
    func storeInteger(_ value: Int64, at index: Int, into bytes: UnsafeMutableRawBufferPointer) -> Bool {
        switch self {
        case .bool:
            guard value == 0 || value == 1 else { return false }
            bytes[index] = UInt8(value)
        case .uint8:
            guard let v = UInt8(exactly: value) else { return false }
            bytes[index] = v
        case .int8:
            guard let v = Int8(exactly: value) else { return false }
            bytes.storeBytes(of: v, toByteOffset: index, as: Int8.self)
        case .uint16:
            guard let v = UInt16(exactly: value) else { return false }
            bytes.storeBytes(of: v.littleEndian, toByteOffset: 2 * index, as: UInt16.self)
        case .int16:
            guard let v = Int16(exactly: value) else { return false }
            bytes.storeBytes(of: v.littleEndian, toByteOffset: 2 * index, as: Int16.self)
        case .uint32:
            guard let v = UInt32(exactly: value) else { return false }
            bytes.storeBytes(of: v.littleEndian, toByteOffset: 4 * index, as: UInt32.self)
        case .int32:
            guard let v = Int32(exactly: value) else { return false }
            bytes.storeBytes(of: v.littleEndian, toByteOffset: 4 * index, as: Int32.self)
        case .uint64:
            guard let v = UInt64(exactly: value) else { return false }
            bytes.storeBytes(of: v.littleEndian, toByteOffset: 8 * index, as: UInt64.self)
        case .int64:
            bytes.storeBytes(of: value.littleEndian, toByteOffset: 8 * index, as: Int64.self)
        case .float16, .bfloat16, .float32, .float64:
            return false
        }
        return true
    }
}
