import Foundation
import Testing

import Attention

// scaledDotProductAttentionGradients against torch.autograd through
// torch.nn.functional.scaled_dot_product_attention (Tests/Fixtures/generate_sdpa_gradient_fixtures.py,
// float64 in torch, stored as float32): both backward algorithms, every case.

extension KernelTests {
    @Suite("Attention gradients against PyTorch's autograd")
    struct AttentionGradientsFixtureTests {
        static let cases = [
            "plain", "causal", "causal_lq_lt_lk", "bool_mask", "bias_lq_lk", "bias_heads", "gqa", "scale", "length_one",
            "two_key_blocks_d64", "sequence_layout",
        ]

        @Test(arguments: cases, AttentionAlgorithm.allCases)
        func matchesAutograd(name: String, algorithm: AttentionAlgorithm) throws {
            let file = try SafeTensors(contentsOf: fixtureURL("torch_sdpa_grad_\(name)"))
            let json = try #require(file.metadata["config"]?.data(using: .utf8))
            let config = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
            let (q, k, v) = (try file.tensor(named: "input.query"), try file.tensor(named: "input.key"), try file.tensor(named: "input.value"))
            var mask = AttentionMask(causal: config["is_causal"] as? Bool == true ? .topLeft : .none)
            if file.contains("input.mask") {
                mask.booleanMask = try BooleanMask(shape: file.shape(of: "input.mask"), values: file.booleans(named: "input.mask"))
            }
            if file.contains("input.bias") { mask.bias = try file.tensor(named: "input.bias") }
            let scale = (config["scale"] as? Double).map(Float.init)
            let layout: AttentionLayout = config["layout"] as? String == "sequence" ? .sequence : .heads
            let note = Comment(rawValue: "\(name), \(algorithm)")

            let out = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, scale: scale, algorithm: algorithm, layout: layout)
            expectFixtureClose(out, try file.tensor(named: "output.out"), rtol: 1e-4, atol: 1e-5, note)
            let grads = try scaledDotProductAttentionGradients(
                query: q, key: k, value: v, outputGradient: file.tensor(named: "input.outputGradient"), mask: mask,
                scale: scale, algorithm: algorithm, layout: layout)
            expectFixtureClose(grads.query, try file.tensor(named: "output.query"), rtol: 1e-4, atol: 1e-5, note)
            expectFixtureClose(grads.key, try file.tensor(named: "output.key"), rtol: 1e-4, atol: 1e-5, note)
            expectFixtureClose(grads.value, try file.tensor(named: "output.value"), rtol: 1e-4, atol: 1e-5, note)
            #expect((grads.bias == nil) == !file.contains("output.bias"), note)
            if let bias = grads.bias {
                expectFixtureClose(bias, try file.tensor(named: "output.bias"), rtol: 1e-4, atol: 1e-5, note)
            }
        }
    }
}
