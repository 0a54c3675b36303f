"""LogNormal units: log x ~ N(loc, scale^2), x > 0; kernels: kernels/families/lognormal.py."""
from .law import Distribution

LAWS = (
    Distribution(
        "LogNormal", ("loc", "scale"), reparameterized=("loc", "scale"), implicit=True, noise="normal",
        positive=("scale",),
        kernels=dict(sample="lognormal_sample", sample_bwd="lognormal_sample_bwd", log_prob="lognormal_log_prob",
                     log_prob_bwd="lognormal_log_prob_bwd",
                     kl="lognormal_kl", kl_bwd="lognormal_kl_bwd"),
        kind="lognormal", constructor="LogNormal", support="positive",
        doc="Independent log-normal units: log x ~ N(loc, scale^2) (scale > 0: use softplus or exp). Drawn as "
            "exp(loc + scale eps) (pathwise). A number for loc or scale is a constant of the other's width."),
)
