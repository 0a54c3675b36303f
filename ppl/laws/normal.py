"""Gaussian units N(loc, scale^2)."""
from .law import Distribution

LAWS = (
    Distribution(
        "Normal", ("loc", "scale"), reparameterized=("loc", "scale"), noise="normal", positive=("scale",),
        gaussian=True, likelihood="gaussian_nll",
        kernels=dict(sample="normal_sample", sample_bwd="normal_sample_bwd", log_prob="normal_log_prob",
                     log_prob_bwd="normal_log_prob_bwd"),
        kind="normal", constructor="Normal",
        doc="Independent Gaussian units N(loc, scale^2); scale must be positive (use softplus, exp or sqrt1p). "
            "A number for loc or scale is a constant of the other's width; -log p is ppl.gaussian_nll."),
)
