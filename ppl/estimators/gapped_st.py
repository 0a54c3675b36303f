"""Gapped straight-through (Fan et al., ICML 2022, "Training Discrete Deep Generative Models
via Gapped Straight-Through Estimator", GST-1.0) for logit-link Bernoulli and categorical nodes.

The forward pass is the hard sample D; the backward pass is the Gumbel-softmax one at a
deterministic perturbation of the logits chosen from D alone (no noise is drawn for it): the
chosen logit raised to the maximum, every other one lowered to at most the maximum minus
`gap`, the movements held fixed (kernels/cpu_st.py). Like Gumbel-Rao it removes the noise's
share of ST-Gumbel-softmax's variance, by a representative perturbation instead of an average
over the conditional noise; biased (its mean is not ST-Gumbel-softmax's either)."""
from .base import Estimator, register, sample_hard


@register
class GappedST(Estimator):
    name = "gapped_st"
    about = "Gumbel-softmax Jacobian at a deterministic gapped perturbation consistent with the sample"
    cite = 'Fan et al. 2022, "Training discrete deep generative models via gapped straight-through estimator", ICML'
    objectives = ("elbo", "iwae")
    unbiased = False
    bias = ("the Gumbel-softmax Jacobian at one deterministic perturbation of the logits consistent with the "
            "sample (gapped by `gap`) stands in for the discrete value's finite difference")
    passes_value_grad = True
    options = {"temperature": 1.0, "gap": 1.0}

    def check(self, info):
        if "gapped_st_bwd" not in info.dist.kernels:
            return f"{info.dist.name} has no gapped straight-through backward (logit-link Bernoulli and Categorical do)"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def forward(self, lw, node, opts):
        sample_hard(lw, node)

    def backward(self, lw, node, opts):
        gv = lw.g(node)
        (ga,) = lw.param_grads(node)
        if gv is None or ga == lw.E2:
            return
        tau = lw.state_value(f"{node.name}.temperature", float(opts["temperature"]))
        (a,) = lw.param_values(node)
        lw.call(lw.dist(node).kernels["gapped_st_bwd"], [a, lw.v(node), tau, repr(float(opts["gap"])), gv], [ga],
                node)
