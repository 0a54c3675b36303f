"""Binomial counts: p(k) = C(n, k) p^k (1 - p)^(n - k), k = 0..n, n = total_count (a node: a count
that may depend on the state), given by probs or logits (p = sigmoid(logits)); kernels:
kernels/families/binomial.py. No gradient reaches total_count: it is a discrete input (a count
computed from parameters is piecewise constant in them)."""
from ..calls import KERNELS
from .law import Distribution

_DOC = ("Independent binomial counts out of total_count (non-negative integers: NaN, negative or fractional "
        "counts are refused in the step; no gradient reaches it), given by exactly one of probs (within "
        "[0, 1]) or logits (p = sigmoid(logits)); drawn by the inverse CDF of one uniform per unit, exact for "
        "any total_count. Estimated by the score function or mvd; enumerated when total_count is a number.")

LAWS = (
    Distribution(
        "Binomial", ("total_count", "probs"), discrete=True, unbounded=True, noise="uniform",
        constraints={"total_count": "count", "probs": "unit"}, count_bound="total_count",
        kernels=dict(sample="binomial_sample", log_prob="binomial_log_prob", log_prob_bwd="binomial_log_prob_bwd",
                     enum=KERNELS.core.count_enum.on("stride", "bound", "value")),
        kind="binomial", constructor="Binomial", support="count", by_param={"logits": "binomial_logits"},
        doc=_DOC),
    Distribution(
        "Binomial(logits)", ("total_count", "logits"), discrete=True, unbounded=True, noise="uniform",
        constraints={"total_count": "count"}, count_bound="total_count",
        kernels=dict(sample="binomial_logits_sample", log_prob="binomial_logits_log_prob",
                     log_prob_bwd="binomial_logits_log_prob_bwd",
                     enum=KERNELS.core.count_enum.on("stride", "bound", "value")),
        kind="binomial_logits", support="count",
        doc="Independent binomial counts, p = sigmoid(logits) (Binomial's logits=)."),
)
