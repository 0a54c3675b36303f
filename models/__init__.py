"""Ready models built with the ppl DSL, and the small data they train on (installed as ppl.models).

Every model module has `build(**options) -> ppl.Model`, `data(seed) -> {"train", "test"}`,
`evaluate(prog, data) -> {metric: value}` (its HEADLINE metric first; BETTER: "higher" or
"lower", the way it improves) and DEFAULTS for the
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
    "poisson_factor": "Poisson factor analysis: counts from Gamma latents (implicit pathwise), on planted counts",
}
# the papers each model follows (authors, year, venue), shown by `ppl list`
CITATIONS = {
    "sbn": "Neal 1992, \"Connectionist learning of belief networks\", Artificial Intelligence 56; trained as a "
           "VAE as in Mnih & Gregor 2014 (NVIL), ICML",
    "gaussian_vae": "Kingma & Welling 2014, \"Auto-encoding variational Bayes\", ICLR; Rezende, Mohamed & "
                    "Wierstra 2014, ICML",
    "categorical_vae": "Jang, Gu & Poole 2017 (Gumbel-softmax), ICLR; Maddison, Mnih & Teh 2017 (Concrete), ICLR",
    "toy_bernoulli": "Tucker et al. 2017 (REBAR), NeurIPS; Grathwohl et al. 2018 (RELAX), ICLR",
    "prob_regression": "Nix & Weigend 1994, \"Estimating the mean and variance of the target probability "
                       "distribution\", ICNN",
    "stochastic_classifier": "Bengio, Leonard & Courville 2013, \"Estimating or propagating gradients through "
                             "stochastic neurons\", arXiv:1308.3432",
    "nce_embeddings": "Mikolov et al. 2013, \"Distributed representations of words and phrases\", NeurIPS; "
                      "Gutmann & Hyvarinen 2010 (NCE), AISTATS",
    "gbrbm": "Gutmann & Hyvarinen 2010, \"Noise-contrastive estimation\", AISTATS",
    "poisson_factor": "Zhou, Hannah, Dunson & Carin 2012, \"Beta-negative binomial process and Poisson factor "
                      "analysis\", AISTATS; Figurnov, Mohamed & Mnih 2018 (implicit reparameterisation), NeurIPS",
}


def get(name: str):
    """The model module called `name` (see MODELS), or a user model "path/to/file.py:build"
    (user_model)."""
    if ".py:" in name:
        path, fn = name.rsplit(":", 1)
        return user_model(path, fn)
    if name not in MODELS:
        from ppl.dsl import ModelError
        raise ModelError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    return importlib.import_module(f"{__name__}.{name}")


USER_DEFAULTS = dict(steps=1000, batch=32, lr=1e-3, optimizer="adam", dtype="float32", samples=1, policy="measured")
_USER = {}


def user_model(path: str, fn: str):
    """A model of the user's own, `fn(**options) -> ppl.Model` in the Python file `path`, as a
    module like the bundled ones: `build` (that function), DEFAULTS (USER_DEFAULTS, or the file's
    own DEFAULTS dict), `evaluate` (the held-out loss on the test rows: the negative objective,
    hard samples, 10 fixed draws; for a model declared with m.latent / m.observe also Program.evaluate's
    test ELBO and IWAE-100, or a plated model's held-out log predictive density per row, test_lppd),
    HEADLINE "test_loss"; its data come from `--data FILE`
    (`data()` says so). The file is imported once per process (a Dask worker imports it too)."""
    import importlib.util
    import types
    from pathlib import Path

    from ppl.dsl import ModelError
    key = (str(Path(path).resolve()), fn)
    mod = _USER.get(key)
    if mod is not None:
        return mod
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"model file {path!r} not found; give MODEL as path/to/file.py:function")
    name = f"ppl_user_{abs(hash(key)):x}"
    spec = importlib.util.spec_from_file_location(name, file)
    src = importlib.util.module_from_spec(spec)
    import sys
    sys.modules[name] = src
    try:
        spec.loader.exec_module(src)
    except Exception as e:
        del sys.modules[name]
        raise ModelError(f"model file {path}: importing it raised {type(e).__name__}: {e}") from None
    try:   # Dask workers cannot import this file by name: send its functions by value
        import cloudpickle
        cloudpickle.register_pickle_by_value(src)
    except ImportError:
        pass
    build = getattr(src, fn, None)
    if not callable(build):
        have = [k for k, v in vars(src).items() if callable(v) and not k.startswith("_")]
        raise ModelError(f"{path} has no function {fn!r} (it defines {', '.join(have) or 'none'}); "
                         f"give MODEL as {path}:FUNCTION, a function returning a ppl.Model")
    mod = types.ModuleType(f"{name}.model")
    mod.__doc__ = f"user model {path}:{fn}"
    mod.build, mod.HEADLINE, mod.USER = _checked_build(build, path, fn, file), "test_loss", f"{path}:{fn}"
    mod.BETTER = "lower"
    mod.DEFAULTS = {**USER_DEFAULTS, **getattr(src, "DEFAULTS", {})}

    def data(seed=0):
        raise ModelError(f"{path}:{fn} is your model: give its data with --data FILE (an .npz with an array "
                         f"per model input)")

    def evaluate(prog, d):
        from ppl.language import declare
        from ppl.training.fit import heldout_loss
        if d.get("test") is None:
            return {}
        out = {"test_loss": heldout_loss(prog, d["test"])}
        if declare.is_pure(prog.model) and getattr(prog.model, "plates", None):   # rows sharing global latents
            out["test_lppd"] = prog.evaluate(d["test"], "lppd", samples=100)
        elif declare.is_pure(prog.model):
            out["test_elbo"] = prog.evaluate(d["test"], "elbo", samples=100)
            out["test_iwae_100"] = prog.evaluate(d["test"], "iwae", samples=100)
        return out
    mod.data, mod.evaluate = data, evaluate
    _USER[key] = mod
    return mod


def _checked_build(build, path, fn, file):
    """The user's build function, whose failures are one ModelError naming the file, the line
    and the fix (the command line prints one line and exits 2), and whose result must be a model."""
    import functools

    @functools.wraps(build)   # its signature: the command line checks --model-opt against it
    def checked(**options):
        import traceback

        from ppl.dsl import Model, ModelError
        try:
            model = build(**options)
        except ModelError:
            raise
        except Exception as e:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(file)]
            where = f" at line {frames[-1].lineno}" if frames else ""
            raise ModelError(f"{path}:{fn}() raised {type(e).__name__}{where}: {' '.join(str(e).split())}; fix the "
                             f"model file") from None
        if not isinstance(model, Model):
            raise ModelError(f"{path}:{fn}() returned {type(model).__name__}, not a ppl.Model; return the model "
                             f"(`with ppl.Model('name') as m: ...`, then `return m`)")
        return model
    return checked
