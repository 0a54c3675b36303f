"""Dirichlet units: groups of K components on the simplex, p(x) = prod_k x_k^(a_k - 1) / B(a);
kernels: kernels/families/dirichlet.py. Drawn as G_k / sum_j G_j, one uniform per component;
pathwise by implicit reparameterisation of the Gammas (Figurnov, Mohamed & Mnih 2018)."""
from .law import Distribution

LAWS = (
    Distribution(
        "Dirichlet", ("concentration",), reparameterized=("concentration",), implicit=True, noise="uniform",
        grouped=True, positive=("concentration",),
        kernels=dict(sample="dirichlet_sample", sample_bwd="dirichlet_sample_bwd", log_prob="dirichlet_log_prob",
                     log_prob_bwd="dirichlet_log_prob_bwd",
                     kl="dirichlet_kl", kl_bwd="dirichlet_kl_bwd"),
        kind="dirichlet", constructor="Dirichlet", support="simplex",
        doc="Groups of Dirichlet units: concentrations of width G * classes (without classes, one group; > 0: use softplus or exp), each "
            "group of `classes` columns a point of the simplex (components > 0 summing to 1), mean "
            "concentration / its group's sum. Drawn as normalised Gamma quantiles, differentiated by implicit "
            "reparameterisation (pathwise)."),
)
