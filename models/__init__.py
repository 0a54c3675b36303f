"""Ready models built with the ppl DSL, and the small data they train on (installed as ppl.models).

Every model module has `build(**options) -> ppl.Model`, `data(seed) -> {"train", "test"}`,
`evaluate(prog, data) -> {metric: value}` (its HEADLINE metric first) and DEFAULTS for the
`ppl train` command (steps, batch, lr, optimizer, dtype, samples, policy). A model that can
train on the user's data (`ppl train MODEL --data FILE`) names, in DATA_WIDTHS, the build()
option that sets each input's width; the command builds it at the data's width.
"""
import importlib

MODELS = {
    "sbn": "sigmoid belief net VAE (1-2 Bernoulli layers, linear or tanh MLP) on the binarized digits",
    "gaussian_vae": "Gaussian VAE 64-32-8 (tanh), pathwise, closed-form KL, on the binarized digits",
    "categorical_vae": "discrete VAE with 8 groups of 4-way categorical latents on the binarized digits",
    "toy_bernoulli": "the REBAR / RELAX toy problem: b ~ Bernoulli(sigmoid(theta)), minimise E[(b - t)^2]",
    "prob_regression": "heteroscedastic Gaussian regression, sigma = sqrt(1 + z^2)",
    "stochastic_classifier": "binary stochastic neurons + softmax head on the digit labels",
    "nce_embeddings": "skip-gram embeddings by NCE / negative sampling on a planted corpus",
    "gbrbm": "Gaussian-Bernoulli RBM free energy, trained by NCE on 2-D continuous data",
}


def get(name: str):
    """The model module called `name` (see MODELS)."""
    if name not in MODELS:
        from ppl.dsl import ModelError
        raise ModelError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    return importlib.import_module(f"{__name__}.{name}")
