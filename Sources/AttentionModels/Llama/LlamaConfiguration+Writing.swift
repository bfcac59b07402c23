import Attention

extension LlamaConfiguration {
    /// The configuration as `transformers` writes a `LlamaConfig` to `config.json`, for weights
    /// stored as `dtype`: every setting this type has, under its `config.json` key, and the
    /// constant ones `transformers` expects (`architectures`, `model_type`, `hidden_act`, no
    /// rope scaling). No end-of-sequence id is written as `null`, not omitted: `LlamaConfig`
    /// would otherwise assume id 2.
    func json(dtype: Tensor.DType) -> JSONValue {
        .object([
            "architectures": .array([.string("LlamaForCausalLM")]),
            "model_type": .string("llama"),
            "vocab_size": JSONValue(vocabularySize),
            "hidden_size": JSONValue(hiddenSize),
            "intermediate_size": JSONValue(intermediateSize),
            "num_hidden_layers": JSONValue(layerCount),
            "num_attention_heads": JSONValue(headCount),
            "num_key_value_heads": JSONValue(keyValueHeadCount),
            "head_dim": JSONValue(headSize),
            "hidden_act": .string("silu"),
            "rms_norm_eps": JSONValue(rmsNormEpsilon) ?? .null,
            "rope_theta": JSONValue(ropeTheta) ?? .null,
            "rope_scaling": .null,
            "attention_bias": .bool(attentionBias),
            "attention_dropout": .number("0.0"),
            "mlp_bias": .bool(mlpBias),
            "tie_word_embeddings": .bool(tieWordEmbeddings),
            "max_position_embeddings": JSONValue(maxPositions),
            "initializer_range": JSONValue(initializerRange) ?? .null,
            "bos_token_id": .null,
            "eos_token_id": endOfSequenceJSON,
            "pretraining_tp": JSONValue(1),
            "use_cache": .bool(true),
            "torch_dtype": .string(dtype == .bfloat16 ? "bfloat16" : dtype == .float16 ? "float16" : "float32"),
        ])
    }

    /// `eos_token_id`: one id, a list of several, or `null` for none.
    var endOfSequenceJSON: JSONValue {
        switch endOfSequenceTokenIDs.count {
        case 0: .null
        case 1: JSONValue(endOfSequenceTokenIDs[0])
        default: .array(of: endOfSequenceTokenIDs)
        }
    }
}
