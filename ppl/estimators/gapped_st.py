"""Gapped straight-through (Fan et al., ICML 2022, "Training Discrete Deep Generative Models
via Gapped Straight-Through Estimator", GST-1.0) for logit-link Bernoulli and categorical nodes.

The forward pass is the hard sample D; the backward pass is the Gumbel-softmax one at a
deterministic perturbation of the logits chosen from D alone (no noise is drawn for it): the
chosen logit raised to the maximum, every other one lowered to at most the maximum minus
`gap`, the movements held fixed (kernels/families/st.py). Like Gumbel-Rao it removes the noise's
share of ST-Gumbel-softmax's variance, by a representative perturbation instead of an average
over the conditional noise; biased (its mean is not ST-Gumbel-softmax's either)."""
from .protocol import HardSampleSurrogate, register


@register
class GappedST(HardSampleSurrogate):
    name = "gapped_st"
    about = "Gumbel-softmax Jacobian at a deterministic gapped perturbation consistent with the sample"
    cite = 'Fan et al. 2022, "Training discrete deep generative models via gapped straight-through estimator", ICML'
    bias = ("the Gumbel-softmax Jacobian at one deterministic perturbation of the logits consistent with the "
            "sample (gapped by `gap`) stands in for the discrete value's finite difference")
    options = {"temperature": 1.0, "gap": 1.0}
    kernel = "gapped_st_bwd"
    kernels = {"bernoulli": {"gapped_st_bwd": "gapped_st_bernoulli_bwd"},
               "categorical": {"gapped_st_bwd": "gapped_st_categorical_bwd"}}
    title = "gapped straight-through"

    def call_backward(self, ctx, kernel, a, tau, gv, ga):
        ctx.law_call(kernel, [a, ctx.value(), tau, float(ctx.options["gap"]), gv], [ga])
