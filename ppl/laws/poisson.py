"""Poisson counts: p(k) = rate^k exp(-rate) / k!; kernels: kernels/families/poisson.py."""
from .law import Distribution

LAWS = (
    Distribution(
        "Poisson", ("rate",), discrete=True, unbounded=True, noise="uniform", constraints={"rate": "nonnegative"},
        kernels=dict(sample="poisson_sample", log_prob="poisson_log_prob", log_prob_bwd="poisson_log_prob_bwd"),
        kind="poisson", constructor="Poisson", support="count",
        doc="Independent Poisson counts with the given rates (>= 0: rate 0 is the certain 0; use softplus or "
            "exp for a positive one); a count has no pathwise gradient."),
)
