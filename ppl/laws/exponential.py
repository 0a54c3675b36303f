"""Exponential units: density rate exp(-rate x), x > 0; kernels: kernels/families/exponential.py."""
from .law import Distribution

LAWS = (
    Distribution(
        "Exponential", ("rate",), reparameterized=("rate",), implicit=True, noise="uniform", positive=("rate",),
        kernels=dict(sample="exponential_sample", sample_bwd="exponential_sample_bwd",
                     log_prob="exponential_log_prob", log_prob_bwd="exponential_log_prob_bwd",
                     kl="exponential_kl", kl_bwd="exponential_kl_bwd"),
        kind="exponential", constructor="Exponential", support="positive",
        doc="Independent Exponential units with the given rates (> 0: use softplus or exp); mean 1 / rate. "
            "Drawn by the inverse CDF (pathwise)."),
)
