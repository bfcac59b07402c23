extension MultiHeadDotProductAttention {
    /// The attention a ``MultiHeadDotProductAttention`` runs on its projected heads: Flax's
    /// `attention_fn`, `dot_product_attention` by default.
    ///
    /// It receives the query, key and value heads in the `(B, L, H, D)` layout (the module's
    /// leading batch dimensions flattened into B), the mask, and the dropout to apply, and returns
    /// the output heads `(B, L, H, Dv)` in `float32`. The module checks that shape and dtype
    /// (`AttentionError.unsupportedDType` naming `"attentionFunction"` otherwise).
    ///
    /// ``fused`` (the default) runs the fused kernel on the heads in place; ``unfused`` runs the
    /// unfused reference kernel. A custom function is a closure:
    ///
    /// ```swift
    /// // Attention with a temperature of 2 on the scores, through the fused kernel.
    /// let tempered = MultiHeadDotProductAttention.AttentionFunction { arguments in
    ///     try scaledDotProductAttention(
    ///         query: arguments.query, key: arguments.key, value: arguments.value,
    ///         mask: arguments.mask, scale: 0.5 / Float(arguments.query.shape[3]).squareRoot(),
    ///         dropout: arguments.dropout, maskedRows: .meanOfValues, layout: .sequence)
    /// }
    /// var rng = SeededGenerator(seed: 0)
    /// let attention = try MultiHeadDotProductAttention(
    ///     heads: 4, inputFeatures: 32, attentionFunction: tempered, using: &rng)
    /// ```
    ///
    /// (That closure ignores ``Arguments/broadcastDropout``; call ``fused`` from a closure to keep
    /// Flax's broadcast dropout.)
    public struct AttentionFunction: Sendable {
        /// The arguments of an attention function.
        ///
        /// ```swift
        /// let f = MultiHeadDotProductAttention.AttentionFunction { arguments in
        ///     print(arguments.query.shape, arguments.key.shape)   // [B, L, H, D] [B, S, H, D]
        ///     return try MultiHeadDotProductAttention.AttentionFunction.fused(arguments)
        /// }
        /// ```
        public struct Arguments: Sendable {
            /// The query heads, `(B, L, H, Dqk)`: B is the product of the module's batch
            /// dimensions. Not yet scaled by `1/√Dqk`.
            public var query: Tensor

            /// The key heads, `(B, S, H, Dqk)`. While decoding with a custom function, this is the
            /// whole cache, `S` = its `maxLength`, with the slots not yet written masked in
            /// ``mask`` (as Flax passes its cache).
            public var key: Tensor

            /// The value heads, `(B, S, H, Dv)`.
            public var value: Tensor

            /// The mask, as ``scaledDotProductAttention(query:key:value:mask:scale:dropout:maskedRows:threads:algorithm:layout:outputDType:)``
            /// takes it: a ``BooleanMask`` broadcastable to `(B, H, L, S)` (true attends) when the
            /// module was given one (its leading batch dimensions flattened), and no causal
            /// masking, window or bias. A row with every key masked must give the mean of the
            /// values (`maskedRows: .meanOfValues`), as Flax's `finfo.min` masking does.
            public var mask: AttentionMask

            /// The dropout to apply to the attention weights, or `nil` when the call is
            /// deterministic or the rate is 0.
            public var dropout: Dropout?

            /// Whether one dropout mask `(L, S)` is shared by every batch and head (Flax's
            /// `broadcast_dropout`, the default) instead of one decision per weight.
            public var broadcastDropout: Bool

            /// Creates the arguments of a call.
            ///
            /// ```swift
            /// let arguments = MultiHeadDotProductAttention.AttentionFunction.Arguments(
            ///     query: q, key: k, value: v)   // (B, L, H, D) heads
            /// let out = try MultiHeadDotProductAttention.AttentionFunction.fused(arguments)
            /// ```
            public init(
                query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask = .unmasked,
                dropout: Dropout? = nil, broadcastDropout: Bool = true
            ) {
                self.query = query
                self.key = key
                self.value = value
                self.mask = mask
                self.dropout = dropout
                self.broadcastDropout = broadcastDropout
            }
        }

        enum Kind {
            case kernel(AttentionAlgorithm)
            case custom(@Sendable (Arguments) throws -> Tensor)
        }

        let kind: Kind

        private init(kind: Kind) {
            self.kind = kind
        }

        /// A custom attention function.
        ///
        /// ```swift
        /// let logged = MultiHeadDotProductAttention.AttentionFunction { arguments in
        ///     print("attention on", arguments.query.shape)
        ///     return try MultiHeadDotProductAttention.AttentionFunction.fused(arguments)
        /// }
        /// ```
        public init(_ body: @escaping @Sendable (Arguments) throws -> Tensor) {
            kind = .custom(body)
        }

        /// Flax's `dot_product_attention` on the fused kernel: `softmax(q kᵀ / √Dqk, masked) v`,
        /// the heads read in place (no transposes), a fully masked row giving the mean of the
        /// values, dropout on the weights (broadcast or not) with the kernels' counter-based
        /// hash. The default.
        ///
        /// While decoding, it reads the cache in place: only the written positions, with
        /// bottom-right causal masking.
        public static let fused = AttentionFunction(kind: .kernel(.fused))

        /// As ``fused``, on the unfused reference kernel (full score matrix, row softmax, product
        /// with V). For comparisons.
        public static let unfused = AttentionFunction(kind: .kernel(.unfused))

        /// Runs the function.
        ///
        /// - Throws: for ``fused`` and ``unfused``, the errors of
        ///   ``scaledDotProductAttention(query:key:value:mask:scale:dropout:maskedRows:threads:algorithm:layout:outputDType:)``
        ///   with the `.sequence` layout; for a custom function, what it throws.
        public func callAsFunction(_ arguments: Arguments) throws -> Tensor {
            switch kind {
            case let .custom(body):
                return try body(arguments)
            case let .kernel(algorithm):
                var problem = try AttentionProblem(
                    query: arguments.query, key: arguments.key, value: arguments.value, mask: arguments.mask,
                    scale: nil, dropout: arguments.dropout, maskedRows: .meanOfValues, threads: nil,
                    layout: .sequence)
                problem.call.broadcastDropout = arguments.broadcastDropout
                return try problem.run(algorithm: algorithm, returningLogSumExp: false).output
            }
        }
    }
}
