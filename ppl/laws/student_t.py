"""Student's t units: (x - loc) / scale ~ t(df); kernels: kernels/families/student_t.py. Drawn
from two uniforms per unit (noise_draws=2) through two Gamma(df / 2) quantiles; pathwise in loc
and scale, and in df by implicit reparameterisation."""
from .law import Distribution

LAWS = (
    Distribution(
        "StudentT", ("df", "loc", "scale"), reparameterized=("df", "loc", "scale"), implicit=True,
        noise="uniform", noise_draws=2, positive=("df", "scale"),
        kernels=dict(sample="student_t_sample", sample_bwd="student_t_sample_bwd", log_prob="student_t_log_prob",
                     log_prob_bwd="student_t_log_prob_bwd"),
        kind="student_t", constructor="StudentT",
        doc="Independent Student's t units with df degrees of freedom, location loc and scale (df and scale "
            "> 0: use softplus or exp); heavy-tailed (no mean for df <= 1). Drawn from two Gamma(df / 2) "
            "quantiles (pathwise; in df by implicit reparameterisation). A number for a parameter is a "
            "constant of the others' width."),
)
