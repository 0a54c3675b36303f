"""Gumbel-Rao (Paulus et al., ICLR 2021, "Rao-Blackwellizing the Straight-Through
Gumbel-Softmax Gradient Estimator") for logit-link Bernoulli and categorical nodes.

The forward pass is the hard sample D = argmax(a + G) (Bernoulli: H(a + L)); the backward pass
is the straight-through Gumbel-softmax one, d softmax((a + G) / tau)/da with the noise held
fixed, averaged over `draws` (the paper's K) draws of the noise given D (the conditional
Gumbel / logistic noise REBAR uses, kernels/conditional.py): a Monte-Carlo estimate of its
conditional expectation given D. Its mean is therefore straight-through Gumbel-softmax's
(for a Bernoulli node, the straight-through binary Concrete's), with less variance; biased as
that one is. The `draws` x width uniforms are one noise fill of the node's stream 1."""
from .base import Estimator, register, sample_hard


@register
class GumbelRao(Estimator):
    name = "gumbel_rao"
    about = "straight-through Gumbel-softmax averaged over K Gumbel draws conditioned on the sample"
    cite = 'Paulus, Maddison & Krause 2021, "Rao-Blackwellizing the straight-through Gumbel-softmax gradient estimator", ICLR'
    objectives = ("elbo", "iwae")
    unbiased = False
    bias = ("the mean of straight-through Gumbel-softmax (the relaxed sample's Jacobian stands in for the "
            "discrete value's finite difference); Rao-Blackwellising over the noise given the sample lowers only "
            "the variance")
    passes_value_grad = True
    options = {"temperature": 1.0, "draws": 10}

    def check(self, info):
        if "gumbel_rao_bwd" not in info.dist.kernels:
            return f"{info.dist.name} has no Gumbel-Rao backward (logit-link Bernoulli and Categorical do)"
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
        n = int(opts["draws"])
        tau = lw.state_value(f"{node.name}.temperature", float(opts["temperature"]))
        v = lw.noise(node, "uniform", 1, width=n * node.width)
        (a,) = lw.param_values(node)
        kernel = lw.dist(node).kernels["gumbel_rao_bwd"]
        if lw.dist(node).grouped:
            soft = lw.buf2(f"soft_{node.name}", node.width)
            lw.call(kernel, [a, lw.v(node), v, tau, str(n), gv], [soft, ga], node)
        else:
            lw.call(kernel, [a, lw.v(node), v, tau, str(n), gv], [ga], node)
