internal import CAttention

/// The process-wide settings of the C kernels: which instruction set they use and how many
/// threads a call runs on by default.
///
/// These are global: change them at start-up, in benchmarks or in tests, not while other threads
/// run attention.
///
/// ```swift
/// print(AttentionBackend.instructionSet)    // avx512
/// try AttentionBackend.setThreadCount(1)     // every call single-threaded from now on
/// try AttentionBackend.setThreadCount(nil)   // back to the default
/// ```
public enum AttentionBackend {
    /// An instruction set the kernels are compiled for.
    ///
    /// ```swift
    /// let available = AttentionBackend.InstructionSet.allCases.filter(AttentionBackend.isSupported)
    /// ```
    public enum InstructionSet: String, Sendable, Equatable, Hashable, CaseIterable, CustomStringConvertible {
        /// Portable C for the baseline target (SSE2 on x86-64); available on every x86-64 CPU.
        case scalar
        /// arm64: the portable path compiled with NEON.
        ///
        /// ```swift
        /// #if arch(arm64)
        /// assert(AttentionBackend.instructionSet == .neon)
        /// #endif
        /// ```
        case neon
        /// x86-64 AVX2 + FMA.
        case avx2
        /// x86-64 AVX-512 F/BW/VL + FMA.
        case avx512

        /// The name the C library and the `ATTN_ISA` environment variable use.
        public var description: String { rawValue }

        var cValue: attn_isa {
            switch self {
            case .scalar: ATTN_ISA_SCALAR
            case .neon: ATTN_ISA_NEON
            case .avx2: ATTN_ISA_AVX2
            case .avx512: ATTN_ISA_AVX512
            }
        }

        init?(_ isa: attn_isa) {
            switch isa {
            case ATTN_ISA_SCALAR: self = .scalar
            case ATTN_ISA_NEON: self = .neon
            case ATTN_ISA_AVX2: self = .avx2
            case ATTN_ISA_AVX512: self = .avx512
            default: return nil
            }
        }
    }

    /// The instruction set the kernels use now: the best the CPU supports, unless the environment
    /// variable `ATTN_ISA` or ``setInstructionSet(_:)`` chose another.
    public static var instructionSet: InstructionSet {
        // The C library only ever reports a member of its enum.
        InstructionSet(attn_get_isa()) ?? .scalar
    }

    /// Whether this CPU and build can run `instructionSet`.
    public static func isSupported(_ instructionSet: InstructionSet) -> Bool {
        attn_isa_supported(instructionSet.cValue) != 0
    }

    /// Makes every later call use `instructionSet` (for tests and benchmarks that compare paths).
    ///
    /// ```swift
    /// let original = AttentionBackend.instructionSet
    /// try AttentionBackend.setInstructionSet(.scalar)
    /// defer { try? AttentionBackend.setInstructionSet(original) }
    /// ```
    ///
    /// - Throws: `AttentionError.unsupported` when this CPU or build does not have it.
    public static func setInstructionSet(_ instructionSet: InstructionSet) throws {
        let status = attn_set_isa(instructionSet.cValue)
        if status == ATTN_ERR_UNSUPPORTED {
            throw AttentionError.unsupported(
                feature: instructionSet.rawValue,
                reason: "this CPU or build does not support it (supported: "
                    + InstructionSet.allCases.filter(isSupported).map(\.rawValue).joined(separator: ", ") + ")")
        }
        if let error = AttentionError(status: status, function: "attn_set_isa", context: instructionSet.rawValue) {
            throw error
        }
    }

    /// How attention multiplies bf16 by bf16 when the query, key and value are all bf16 and the
    /// tiled (prefill) kernel runs; decoding and mixed or f16 types always widen to `Float`.
    public enum BFloat16Products: String, Sendable, Equatable, Hashable, CaseIterable, CustomStringConvertible {
        /// Widened to `Float`, as every other type: the f32 tolerance of the rounded inputs.
        case widened = "off"
        /// The AVX512_BF16 dot-product instruction on bf16 pairs, with the softmax weights rounded
        /// to bf16 for P·V (about twice the f32 speed; `attn.h` documents the added error, at most
        /// 2⁻⁹ · max |v|, and the flushing of subnormal inputs). Needs a CPU with AVX512_BF16
        /// (Zen 4, Sapphire Rapids) on the `.avx512` instruction set.
        case native
        /// The same arithmetic as ``native`` in portable code on any CPU (for tests; much slower).
        case emulated

        /// The name the C library and the `ATTN_BF16_DOT` environment variable use.
        public var description: String { rawValue }

        var cValue: attn_bf16_dot {
            switch self {
            case .widened: ATTN_BF16_DOT_OFF
            case .native: ATTN_BF16_DOT_NATIVE
            case .emulated: ATTN_BF16_DOT_EMULATED
            }
        }
    }

    /// The bf16 product mode in use: ``BFloat16Products/native`` when the CPU has AVX512_BF16,
    /// else ``BFloat16Products/widened``, unless `ATTN_BF16_DOT` or ``setBFloat16Products(_:)``
    /// chose another.
    public static var bfloat16Products: BFloat16Products {
        BFloat16Products.allCases.first { $0.cValue == attn_get_bf16_dot() } ?? .widened
    }

    /// Whether this CPU and build can use `mode` (only ``BFloat16Products/native`` can be missing).
    public static func isSupported(_ mode: BFloat16Products) -> Bool {
        attn_bf16_dot_supported(mode.cValue) != 0
    }

    /// Makes every later bf16 attention call use `mode`; ``BFloat16Products/widened`` gives bf16
    /// inputs exactly the f32 arithmetic of their widened values.
    ///
    /// - Throws: `AttentionError.unsupported` when this CPU or build does not have `mode`.
    public static func setBFloat16Products(_ mode: BFloat16Products) throws {
        let status = attn_set_bf16_dot(mode.cValue)
        if status == ATTN_ERR_UNSUPPORTED {
            throw AttentionError.unsupported(
                feature: "bf16 products \(mode)", reason: "this CPU or build lacks AVX512_BF16")
        }
        if let error = AttentionError(status: status, function: "attn_set_bf16_dot", context: mode.rawValue) {
            throw error
        }
    }

    /// The most threads one call may use, and the largest thread count accepted.
    public static var maximumThreadCount: Int { Int(ATTN_MAX_THREADS) }

    /// The number of threads a call uses when it does not pass `threads:`: the last value given
    /// to ``setThreadCount(_:)``, or by default OpenMP's default (normally the number of cores;
    /// the number of online CPUs without OpenMP).
    public static var threadCount: Int { Int(attn_get_num_threads()) }

    /// Sets the default number of threads per call; `nil` restores the built-in default.
    ///
    /// - Throws: `AttentionError.invalidArgument` unless `count` is `nil` or in
    ///   `1...maximumThreadCount`.
    public static func setThreadCount(_ count: Int?) throws {
        if let count, !(1...maximumThreadCount).contains(count) {
            throw AttentionError.invalidArgument(
                argument: "count",
                reason: "must be in 1...\(maximumThreadCount), or nil for the default; got \(count)")
        }
        let status = attn_set_num_threads(Int32(count ?? 0))
        if let error = AttentionError(status: status, function: "attn_set_num_threads", context: "\(count ?? 0)") {
            throw error
        }
    }

    /// The version of the C kernel library, "MAJOR.MINOR.PATCH".
    public static var version: String { String(cString: attn_version()) }
}
