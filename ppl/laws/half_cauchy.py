"""HalfCauchy units: |Cauchy(0, scale)|, x >= 0; kernels: kernels/families/half_cauchy.py."""
from .law import Distribution

LAWS = (
    Distribution(
        "HalfCauchy", ("scale",), reparameterized=("scale",), noise="uniform", positive=("scale",),
        kernels=dict(sample="half_cauchy_sample", sample_bwd="half_cauchy_sample_bwd",
                     log_prob="half_cauchy_log_prob", log_prob_bwd="half_cauchy_log_prob_bwd",
                     kl="half_cauchy_kl", kl_bwd="half_cauchy_kl_bwd"),
        kind="half_cauchy", constructor="HalfCauchy", support="positive",
        doc="Independent half-Cauchy units (scale > 0: use softplus or exp), heavy-tailed: no mean; a usual "
            "prior of a scale (Gelman 2006). Drawn by the inverse CDF, scale tan(pi u / 2) (pathwise)."),
)
