"""Gamma units: p(x) = rate^a x^(a - 1) exp(-rate x) / Gamma(a), x > 0; kernels: kernels/families/gamma.py.
Pathwise by implicit reparameterisation (Figurnov, Mohamed & Mnih 2018)."""
from .law import Distribution

LAWS = (
    Distribution(
        "Gamma", ("concentration", "rate"), reparameterized=("concentration", "rate"), implicit=True,
        noise="uniform", positive=("concentration", "rate"),
        kernels=dict(sample="gamma_sample", sample_bwd="gamma_sample_bwd", log_prob="gamma_log_prob",
                     log_prob_bwd="gamma_log_prob_bwd",
                     kl="gamma_kl", kl_bwd="gamma_kl_bwd"),
        kind="gamma", constructor="Gamma", support="positive",
        doc="Independent Gamma units with the given concentrations and rates (both > 0: use softplus or exp); "
            "mean concentration / rate. Drawn by the inverse CDF, differentiated by implicit "
            "reparameterisation (pathwise). A number for a parameter is a constant of the other's width."),
)
