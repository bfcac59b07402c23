import ArgumentParser
import Attention

/// The values of `--cache-dtype`: how the key/value cache is stored.
package enum CacheType: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// 32-bit floats.
    case f32
    /// IEEE half precision.
    case f16
    /// bfloat16.
    case bf16

    /// The tensor type of the cache.
    package var dtype: Tensor.DType {
        switch self {
        case .f32: .float32
        case .f16: .float16
        case .bf16: .bfloat16
        }
    }
}

/// The values of `--products`: how the projections multiply by bf16 weights.
package enum ProductsType: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// The activations kept in f32.
    case f32
    /// The activations rounded to bf16 first.
    case bf16

    /// The model's setting.
    package var products: MatrixProducts {
        switch self {
        case .f32: .float32
        case .bf16: .bfloat16
        }
    }
}
