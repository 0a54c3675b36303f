"""Beta units: p(x) = x^(a - 1) (1 - x)^(b - 1) / B(a, b), 0 < x < 1; kernels: kernels/families/beta.py.
Drawn as G_a / (G_a + G_b) from two uniforms per unit (noise_draws=2); pathwise by implicit
reparameterisation of the two Gammas (Figurnov, Mohamed & Mnih 2018)."""
from .law import Distribution

LAWS = (
    Distribution(
        "Beta", ("concentration1", "concentration0"), reparameterized=("concentration1", "concentration0"),
        implicit=True, noise="uniform", noise_draws=2, positive=("concentration1", "concentration0"),
        kernels=dict(sample="beta_sample", sample_bwd="beta_sample_bwd", log_prob="beta_log_prob",
                     log_prob_bwd="beta_log_prob_bwd",
                     kl="beta_kl", kl_bwd="beta_kl_bwd"),
        kind="beta", constructor="Beta", support="unit",
        doc="Independent Beta units in (0, 1) with the given concentrations (both > 0: use softplus or exp): "
            "concentration1 a on x, concentration0 b on 1 - x, mean a / (a + b). Drawn as G_a / (G_a + G_b) "
            "from two Gamma quantiles, differentiated by implicit reparameterisation (pathwise). A number "
            "for a parameter is a constant of the other's width."),
)
