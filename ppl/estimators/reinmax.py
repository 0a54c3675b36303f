"""ReinMax (Liu et al., NeurIPS 2023, "Bridging Discrete and Backpropagation: Straight-Through
and Beyond") for logit-link Bernoulli and categorical nodes.

The forward pass is the hard sample D; the backward pass replaces ST's first-order (forward
Euler) step by Heun's second-order one: with pi0 = softmax(a) and pi1 = (D + softmax(a / tau)) / 2,
    d/da += 2 J(pi1)^T g - J(pi0)^T g / 2,    J(p)^T g = p * (g - <p, g>),
a Bernoulli unit being the two-class case with logits (a, 0) (kernels/families/st.py). Biased in
general; at tau = 1 its mean is the exact gradient whenever the costs are quadratic in the
one-hot value (the trapezoidal rule is exact there), where straight-through is biased. The
paper recommends tau >= 1 (its default 1)."""
from .protocol import HardSampleSurrogate, Rule, register


@register
class ReinMax(HardSampleSurrogate):
    name = "reinmax"
    rules = (Rule("fast", 30, lambda i: i.dist.straight_through and i.differentiable,
                  lambda i: "discrete with differentiable paths; policy 'fast' trades bias for low variance: "
                            "ReinMax (straight-through's hard forward pass, a second-order backward) trained to a "
                            "higher test ELBO than straight-through at equal steps and at equal wall clock, for "
                            "about straight-through's time per step (docs/benchmarks/estimators.md, the "
                            "estimator study)"),)
    about = "hard forward pass, backward through 2 J(pi_1) - J(pi_0) / 2 (Heun's method)"
    cite = 'Liu et al. 2023, "Bridging discrete and backpropagation: straight-through and beyond", NeurIPS'
    bias = ("a second-order (Heun) approximation of each draw's finite difference through df/dD: exact in mean "
            "only when the costs are quadratic in the node's value and temperature = 1")
    options = {"temperature": 1.0}
    kernel = "reinmax_bwd"
    kernels = {"bernoulli": {"reinmax_bwd": "reinmax_bernoulli_bwd"},
               "categorical": {"reinmax_bwd": "reinmax_categorical_bwd"}}
    title = "ReinMax"

