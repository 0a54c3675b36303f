"""HalfNormal units: |N(0, scale^2)|, x >= 0; kernels: kernels/families/half_normal.py."""
from .law import Distribution

LAWS = (
    Distribution(
        "HalfNormal", ("scale",), reparameterized=("scale",), noise="normal", positive=("scale",),
        kernels=dict(sample="half_normal_sample", sample_bwd="half_normal_sample_bwd",
                     log_prob="half_normal_log_prob", log_prob_bwd="half_normal_log_prob_bwd",
                     kl="half_normal_kl", kl_bwd="half_normal_kl_bwd"),
        kind="half_normal", constructor="HalfNormal", support="positive",
        doc="Independent half-normal units |N(0, scale^2)| (scale > 0: use softplus or exp); a usual prior "
            "of a scale. Drawn as scale |eps| (pathwise)."),
)
