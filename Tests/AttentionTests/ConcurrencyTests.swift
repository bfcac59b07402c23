import Foundation
import Testing
import Attention

/// Kernels and modules called from many tasks (and threads) at once give exactly the bits that
/// sequential calls give.
///
/// Each call is deterministic: the kernels split work by the problem's sizes only, never by the
/// thread count, and dropout is a hash of each element's coordinates. So every concurrent result
/// must equal the sequential one bit for bit, whatever `threads:` each call passes.
///
/// Under ``KernelTests`` (one test at a time), so that no other test switches the instruction set
/// while these run.
extension KernelTests {
    @Suite("Concurrency: the same calls from 8 tasks at once")
    struct ConcurrencyTests {
        static let taskCount = 8
        static let iterations = 3

        /// `threads:` for task `index`: the global default, 1, 2 or 3 threads.
        static func threads(_ index: Int) -> Int? { [nil, 1, 2, 3][index % 4] }

        /// Whether two lists of tensors have the same shapes and the same bits.
        static func identical(_ a: [Tensor], _ b: [Tensor]) -> Bool {
            guard a.count == b.count else { return false }
            for (x, y) in zip(a, b) {
                guard x.shape == y.shape else { return false }
                let same = x.withUnsafeBufferPointer { xs in
                    y.withUnsafeBufferPointer { ys in
                        xs.elementsEqual(ys) { $0.bitPattern == $1.bitPattern }
                    }
                }
                guard same else { return false }
            }
            return true
        }

        /// Runs `body(index)` sequentially for every task index, then from `taskCount` concurrent
        /// tasks, `iterations` times each, and expects the same bits from every run.
        func expectConcurrentMatchesSequential(
            _ name: String, sourceLocation: SourceLocation = #_sourceLocation,
            _ body: @escaping @Sendable (Int) throws -> [Tensor]
        ) async throws {
            let sequential = try (0..<Self.taskCount).map { try body($0) }
            let concurrent = try await withThrowingTaskGroup(of: (Int, [[Tensor]]).self) { group in
                for index in 0..<Self.taskCount {
                    group.addTask { (index, try (0..<Self.iterations).map { _ in try body(index) }) }
                }
                var results = [[[Tensor]]](repeating: [], count: Self.taskCount)
                for try await (index, runs) in group { results[index] = runs }
                return results
            }
            var mismatches = 0
            for index in 0..<Self.taskCount {
                for run in concurrent[index] where !Self.identical(run, sequential[index]) { mismatches += 1 }
            }
            #expect(mismatches == 0, "\(name): \(mismatches) concurrent results differ from the sequential ones",
                    sourceLocation: sourceLocation)
        }

        // MARK: Kernels

        @Test func scaledDotProductAttentionFromEightTasks() async throws {
            let problem = Problem(batch: 2, headsQ: 4, headsKV: 2, lengthQ: 45, lengthK: 70, dimQK: 32, dimV: 24, seed: 81)
            let (q, k, v) = try problem.tensors()
            var rng = SeededGenerator(seed: 82)
            let mask = AttentionMask(
                causal: .bottomRight, window: .init(left: 40), keyLengths: [70, 52],
                bias: try Tensor(randomNormal: [4, 45, 70], using: &rng))
            let dropout = Dropout(probability: 0.2, seed: 9)
            try await expectConcurrentMatchesSequential("scaledDotProductAttention") { index in
                let algorithm: AttentionAlgorithm = index % 2 == 0 ? .fused : .unfused
                let result = try scaledDotProductAttentionWithLogSumExp(
                    query: q, key: k, value: v, mask: mask, dropout: dropout, maskedRows: .meanOfValues,
                    threads: Self.threads(index), algorithm: algorithm)
                return [result.output, result.logSumExp]
            }
            // And the thread count never changes the bits: every fused call equals every other.
            let one = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, dropout: dropout, threads: 1)
            let three = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, dropout: dropout, threads: 3)
            #expect(Self.identical([one], [three]))
        }

        @Test func decodingFromEightTasks() async throws {
            // One query against many keys: the row kernel, whose keys are split into chunks merged
            // by log-sum-exp; the chunks depend on the sizes only.
            let problem = Problem(batch: 1, headsQ: 4, headsKV: 1, lengthQ: 1, lengthK: 3000, dimQK: 64, dimV: 64, seed: 83)
            let (q, k, v) = try problem.tensors()
            try await expectConcurrentMatchesSequential("decoding") { index in
                [try scaledDotProductAttention(query: q, key: k, value: v, threads: Self.threads(index))]
            }
        }

        // MARK: Modules

        @Test func linearFromEightTasks() async throws {
            var rng = SeededGenerator(seed: 84)
            let layer = try Linear(inputSize: 64, outputSize: 96, using: &rng)
            let x = try Tensor(randomNormal: [4, 33, 64], using: &rng)
            try await expectConcurrentMatchesSequential("Linear") { _ in [try layer(x)] }
        }

        @Test func equinoxMultiheadAttentionFromEightTasks() async throws {
            var rng = SeededGenerator(seed: 85)
            let mha = try MultiheadAttention(
                heads: 4, querySize: 32, useQueryBias: true, useOutputBias: true, dropoutProbability: 0.1, using: &rng)
            let x = try Tensor(randomNormal: [2, 19, 32], using: &rng)
            try await expectConcurrentMatchesSequential("MultiheadAttention") { index in
                [try mha(x, inference: index % 2 == 0, dropoutSeed: 7)]
            }
        }

        @Test func torchMultiheadAttentionFromEightTasks() async throws {
            var rng = SeededGenerator(seed: 86)
            let mha = try TorchMultiheadAttention(embedDim: 32, heads: 4, batchFirst: true, using: &rng)
            let query = try Tensor(randomNormal: [2, 17, 32], using: &rng)
            let memory = try Tensor(randomNormal: [2, 23, 32], using: &rng)
            try await expectConcurrentMatchesSequential("TorchMultiheadAttention") { index in
                let result = try mha(query: query, key: memory, value: memory, needWeights: index % 2 == 0)
                return [result.output] + (result.weights.map { [$0] } ?? [])
            }
        }

        @Test func flaxMultiHeadDotProductAttentionFromEightTasks() async throws {
            var rng = SeededGenerator(seed: 87)
            let mha = try MultiHeadDotProductAttention(heads: 4, inputFeatures: 32, using: &rng)
            let x = try Tensor(randomNormal: [2, 21, 32], using: &rng)
            try await expectConcurrentMatchesSequential("MultiHeadDotProductAttention") { _ in [try mha(query: x)] }
        }

        // MARK: Threads

        @Test func eightThreadsAtOnce() throws {
            // Eight native threads started together (tasks share a pool as wide as the machine),
            // each calling attention and a linear layer.
            let problem = Problem(batch: 2, headsQ: 2, headsKV: 2, lengthQ: 64, lengthK: 64, dimQK: 32, dimV: 32, seed: 88)
            let (q, k, v) = try problem.tensors()
            var rng = SeededGenerator(seed: 89)
            let layer = try Linear(inputSize: 32, outputSize: 48, using: &rng)
            let body: @Sendable (Int) throws -> [Tensor] = { index in
                let out = try scaledDotProductAttention(
                    query: q, key: k, value: v, mask: .causal(.topLeft), threads: Self.threads(index))
                return [out, try layer(out)]
            }
            let sequential = try body(0)
            let results = Results(count: Self.taskCount)
            let done = DispatchGroup()
            for index in 0..<Self.taskCount {
                done.enter()
                let thread = Thread {
                    results.set(index, Result { try body(index) })
                    done.leave()
                }
                thread.start()
            }
            done.wait()
            for index in 0..<Self.taskCount {
                let got = try results.get(index).get()
                #expect(Self.identical(got, sequential), "thread \(index) differs from the sequential call")
            }
        }

        /// Results written by threads, read after they finished.
        final class Results: @unchecked Sendable {
            private let lock = NSLock()
            private var values: [Result<[Tensor], any Error>?]
            init(count: Int) { values = Array(repeating: nil, count: count) }
            func set(_ index: Int, _ value: Result<[Tensor], any Error>) {
                lock.lock()
                values[index] = value
                lock.unlock()
            }
            func get(_ index: Int) -> Result<[Tensor], any Error> {
                lock.lock()
                defer { lock.unlock() }
                return values[index] ?? .failure(AttentionError.invalidArgument(argument: "thread", reason: "no result"))
            }
        }
    }
}
