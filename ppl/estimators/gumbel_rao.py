"""Gumbel-Rao (Paulus et al., ICLR 2021, "Rao-Blackwellizing the Straight-Through
Gumbel-Softmax Gradient Estimator") for logit-link Bernoulli and categorical nodes.

The forward pass is the hard sample D = argmax(a + G) (Bernoulli: H(a + L)); the backward pass
is the straight-through Gumbel-softmax one, d softmax((a + G) / tau)/da with the noise held
fixed, averaged over `draws` (the paper's K) draws of the noise given D (the conditional
Gumbel / logistic noise REBAR uses, kernels/math/conditional.py): a Monte-Carlo estimate of its
conditional expectation given D. Its mean is therefore straight-through Gumbel-softmax's
(for a Bernoulli node, the straight-through binary Concrete's), with less variance; biased as
that one is. The `draws` x width uniforms are one noise fill of the node's stream 1."""
from .protocol import HardSampleSurrogate, register


@register
class GumbelRao(HardSampleSurrogate):
    name = "gumbel_rao"
    about = "straight-through Gumbel-softmax averaged over K Gumbel draws conditioned on the sample"
    cite = 'Paulus, Maddison & Krause 2021, "Rao-Blackwellizing the straight-through Gumbel-softmax gradient estimator", ICLR'
    bias = ("the mean of straight-through Gumbel-softmax (the relaxed sample's Jacobian stands in for the "
            "discrete value's finite difference); Rao-Blackwellising over the noise given the sample lowers only "
            "the variance")
    options = {"temperature": 1.0, "draws": 10}
    kernel = "gumbel_rao_bwd"
    kernels = {"bernoulli": {"gumbel_rao_bwd": "gumbel_rao_bernoulli_bwd"},
               "categorical": {"gumbel_rao_bwd": "gumbel_rao_categorical_bwd"}}
    title = "Gumbel-Rao"

    def call_backward(self, ctx, kernel, a, tau, gv, ga):
        n = int(ctx.options["draws"])
        v = ctx.noise("uniform", width=n * ctx.node.width)   # stream 1 (the draw's is 0)
        if ctx.law.grouped:
            soft = ctx.buffer("soft", ctx.node.width)
            ctx.law_call(kernel, [a, ctx.value(), v, tau, n, gv], [soft, ga])
        else:
            ctx.law_call(kernel, [a, ctx.value(), v, tau, n, gv], [ga])
