"""Laplace units: density exp(-|x - loc| / scale) / (2 scale); kernels: kernels/families/laplace.py."""
from .law import Distribution

LAWS = (
    Distribution(
        "Laplace", ("loc", "scale"), reparameterized=("loc", "scale"), noise="uniform", positive=("scale",),
        kernels=dict(sample="laplace_sample", sample_bwd="laplace_sample_bwd", log_prob="laplace_log_prob",
                     log_prob_bwd="laplace_log_prob_bwd"),
        kind="laplace", constructor="Laplace",
        doc="Independent Laplace units: density exp(-|x - loc| / scale) / (2 scale); scale must be "
            "positive (use softplus or exp). A number for loc or scale is a constant of the other's width."),
)
