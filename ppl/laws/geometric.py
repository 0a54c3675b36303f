"""Geometric counts: the number of failures before the first success, p(k) = (1 - p)^k p,
k = 0, 1, 2, ... (torch's and Pyro's convention), given by probs in (0, 1] or logits
(p = sigmoid(logits)); kernels: kernels/families/geometric.py."""
from .law import Distribution

LAWS = (
    Distribution(
        "Geometric", ("probs",), discrete=True, unbounded=True, noise="uniform", constraints={"probs": "unit_positive"},
        kernels=dict(sample="geometric_sample", log_prob="geometric_log_prob", log_prob_bwd="geometric_log_prob_bwd"),
        kind="geometric", constructor="Geometric", support="count", by_param={"logits": "geometric_logits"},
        doc="Independent geometric counts, the failures before the first success, P(k) = (1 - p)^k p, given by "
            "exactly one of probs (within (0, 1]: p = 1 always gives 0; 0, a success that never comes, and NaN "
            "are refused in the step) or logits (p = sigmoid(logits)); drawn as floor(log u / log(1 - p)) from "
            "one uniform. Estimated by the score function or mvd."),
    Distribution(
        "Geometric(logits)", ("logits",), discrete=True, unbounded=True, noise="uniform",
        kernels=dict(sample="geometric_logits_sample", log_prob="geometric_logits_log_prob",
                     log_prob_bwd="geometric_logits_log_prob_bwd"),
        kind="geometric_logits", support="count",
        doc="Independent geometric counts, p = sigmoid(logits) (Geometric's logits=)."),
)
