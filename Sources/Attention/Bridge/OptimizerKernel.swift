internal import CAttention

/// The hyperparameters of one `attn_optimizer_step` call, in the kernel's terms.
struct KernelOptimizerStep {
    enum Kind { case sgd, adamW }
    var kind: Kind
    var step: Int
    var learningRate: Float
    var weightDecay: Float
    var momentum: Float = 0
    var dampening: Float = 0
    var nesterov = false
    var beta1: Float = 0.9
    var beta2: Float = 0.999
    var epsilon: Float = 1e-8
    var maximize = false
}

/// Updates `parameter` in place from `gradient` (`attn_optimizer_step`), with the optimiser's
/// state tensors of the parameter's shape: SGD's momentum buffer (`state[0]`, absent without
/// momentum), AdamW's first and second moments (`state[0]`, `state[1]`) and, with AMSGrad, the
/// running maximum (`state[2]`). The caller has checked that every tensor is `float32` and of the
/// parameter's shape and that the gradient is finite.
func optimizerStep(
    _ hyperparameters: KernelOptimizerStep, parameter: inout Tensor, gradient: Tensor, state: inout [Tensor],
    name: @autoclosure () -> String
) throws(AttentionError) {
    if parameter.count == 0 { return }
    var params = attn_optimizer_step_params_default()
    let h = hyperparameters
    params.kind = h.kind == .sgd ? ATTN_OPTIMIZER_SGD : ATTN_OPTIMIZER_ADAMW
    params.count = Int64(parameter.count)
    params.step = Int64(h.step)
    (params.lr, params.weight_decay, params.maximize) = (h.learningRate, h.weightDecay, h.maximize ? 1 : 0)
    (params.momentum, params.dampening, params.nesterov) = (h.momentum, h.dampening, h.nesterov ? 1 : 0)
    (params.beta1, params.beta2, params.eps) = (h.beta1, h.beta2, h.epsilon)
    params.skip_nonfinite = 1
    for index in state.indices { state[index].makeUnique() }
    parameter.makeUnique()
    let status = withExtendedLifetime((parameter, gradient, state)) {
        let buffers = state.map { $0.storage.buffer.baseAddress }
        params.param = parameter.storage.buffer.baseAddress
        params.grad = UnsafePointer(gradient.storage.buffer.baseAddress)
        if h.kind == .sgd {
            params.momentum_buffer = buffers.first ?? nil
        } else {
            (params.first_moment, params.second_moment) = (buffers[0], buffers[1])
            params.max_second_moment = buffers.count > 2 ? buffers[2] : nil
        }
        return attn_optimizer_step(&params)
    }
    if let error = AttentionError(
        status: status, function: "attn_optimizer_step", context: "parameter \(name()) \(parameter.shape), step \(h.step)")
    {
        throw error
    }
}
