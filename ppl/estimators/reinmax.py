"""ReinMax (Liu et al., NeurIPS 2023, "Bridging Discrete and Backpropagation: Straight-Through
and Beyond") for logit-link Bernoulli and categorical nodes.

The forward pass is the hard sample D; the backward pass replaces ST's first-order (forward
Euler) step by Heun's second-order one: with pi0 = softmax(a) and pi1 = (D + softmax(a / tau)) / 2,
    d/da += 2 J(pi1)^T g - J(pi0)^T g / 2,    J(p)^T g = p * (g - <p, g>),
a Bernoulli unit being the two-class case with logits (a, 0) (kernels/cpu_st.py). Biased in
general; at tau = 1 its mean is the exact gradient whenever the costs are quadratic in the
one-hot value (the trapezoidal rule is exact there), where straight-through is biased. The
paper recommends tau >= 1 (its default 1)."""
from .base import Estimator, register, sample_hard


@register
class ReinMax(Estimator):
    name = "reinmax"
    about = "hard forward pass, backward through 2 J(pi_1) - J(pi_0) / 2 (Heun's method)"
    cite = 'Liu et al. 2023, "Bridging discrete and backpropagation: straight-through and beyond", NeurIPS'
    objectives = ("elbo", "iwae")
    unbiased = False
    bias = ("a second-order (Heun) approximation of each draw's finite difference through df/dD: exact in mean "
            "only when the costs are quadratic in the node's value and temperature = 1")
    passes_value_grad = True
    options = {"temperature": 1.0}

    def check(self, info):
        if "reinmax_bwd" not in info.dist.kernels:
            return f"{info.dist.name} has no ReinMax backward (logit-link Bernoulli and Categorical do)"
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
        lw.call(lw.dist(node).kernels["reinmax_bwd"], [a, lw.v(node), tau, gv], [ga], node)
