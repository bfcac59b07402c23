import Attention

/// The result of ``LlamaForCausalLM/generate(prompts:maxNewTokens:sampling:generator:stopAtEndOfSequence:cacheDType:onToken:)``.
public struct LlamaGeneration: Sendable {
    /// The new ids of each sequence (the end-of-sequence id included when one stopped it).
    public var tokens: [[Int]]
    /// The logits at each prompt's last position, `(batchSize, vocabularySize)`.
    public var promptLogits: Tensor
    /// The time of the prefill call (the prompts in, the first new token's logits out).
    public var prefillDuration: Duration
    /// The time of the decode calls (one token per sequence each).
    public var decodeDuration: Duration
    /// The number of decode calls.
    public var decodeSteps: Int
}

extension LlamaForCausalLM {
    /// Generates up to `maxNewTokens` tokens after each prompt: the prompts in one prefill call,
    /// then one token per sequence per decode call, over a cache of exactly the capacity needed.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 0)
    /// let result = try model.generate(prompts: [[1, 2, 3]], maxNewTokens: 32, generator: &rng)
    /// print(result.tokens[0])
    /// ```
    ///
    /// - Parameters:
    ///   - prompts: the token ids of each sequence, each non-empty.
    ///   - maxNewTokens: at least 1.
    ///   - sampling: greedy by default.
    ///   - generator: draws the sampled tokens (unused when greedy).
    ///   - stopAtEndOfSequence: a sequence stops after it produces one of the configuration's
    ///     end-of-sequence ids (true by default); the others go on.
    ///   - cacheDType: the type of the cache's keys and values; `nil` (the default) for the
    ///     weights' type, as `transformers` keeps them.
    ///   - onToken: called with each new id as soon as it is chosen, and the index of its
    ///     sequence (to print text as it comes: ``ByteLevelBPETokenizer/DecodeStream``).
    /// - Throws: `ModelError.invalidArgument` (`"prompts"`, `"maxNewTokens"`) and the model's errors.
    public func generate(
        prompts: [[Int]], maxNewTokens: Int, sampling: TokenSampling = .greedy,
        generator: inout SeededGenerator, stopAtEndOfSequence: Bool = true, cacheDType: Tensor.DType? = nil,
        onToken: (_ sequence: Int, _ id: Int) -> Void = { _, _ in }
    ) throws -> LlamaGeneration {
        guard !prompts.isEmpty else { throw ModelError.invalidArgument(argument: "prompts", reason: "is empty") }
        guard maxNewTokens >= 1 else {
            throw ModelError.invalidArgument(argument: "maxNewTokens", reason: "must be at least 1, got \(maxNewTokens)")
        }
        let capacity = prompts.map(\.count).max()! + maxNewTokens
        var cache = try makeCache(batchSize: prompts.count, capacity: capacity, dtype: cacheDType ?? weightDType)
        let stops = stopAtEndOfSequence ? Set(configuration.endOfSequenceTokenIDs) : []
        let clock = ContinuousClock()
        var tokens = Array(repeating: [Int](), count: prompts.count)
        var finished = Array(repeating: false, count: prompts.count)
        var next: [Int] = []

        func choose(_ logits: Tensor) {
            let vocabulary = configuration.vocabularySize
            next = logits.withUnsafeBufferPointer { rows in
                (0..<prompts.count).map { sequence in
                    sampling.choose(
                        from: UnsafeBufferPointer(rebasing: rows[(sequence * vocabulary)..<((sequence + 1) * vocabulary)]),
                        using: &generator)
                }
            }
            for (sequence, id) in next.enumerated() where !finished[sequence] {
                tokens[sequence].append(id)
                onToken(sequence, id)
                if stops.contains(id) { finished[sequence] = true }
            }
        }

        let prefillStart = clock.now
        let promptLogits = try self(prompts, cache: &cache)
        choose(promptLogits)
        let prefillDuration = clock.now - prefillStart
        let decodeStart = clock.now
        var steps = 0
        while steps + 1 < maxNewTokens, finished.contains(false) {
            choose(try self(next.map { [$0] }, cache: &cache))
            steps += 1
        }
        return LlamaGeneration(
            tokens: tokens, promptLogits: promptLogits, prefillDuration: prefillDuration,
            decodeDuration: clock.now - decodeStart, decodeSteps: steps)
    }
}
