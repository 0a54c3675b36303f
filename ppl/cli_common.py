"""The command line's shared parts: the examples every help page ends with, --model-opt and
the training settings read, a bundled or user model built with its options, --data read for its
inputs, and the options every command takes (ppl.cli and ppl.cli_compare import them).
"""
from __future__ import annotations

import argparse
import inspect

import numpy as np

from .dsl import ModelError
from .training.runs import UsageError, _value

EPILOG = """examples:
  ppl train sbn                                    linear SBN 64-32 on the binarized digits
  ppl train sbn --policy fast --steps 1000         ReinMax (biased, low variance) instead of DisARM
  ppl train sbn --estimator h1=score:baseline=learned
  ppl train sbn --model-opt latent=32,32 --model-opt nonlinear=1
  ppl train sbn --data mnist.npz --model-opt latent=200,200   your data: arrays train_x, test_x (or x)
  ppl train sbn --data train-images-idx3-ubyte.gz --eval-data t10k-images-idx3-ubyte.gz
  ppl explain categorical_vae --estimator straight_through
  ppl explain sbn --model-opt latent=200,200 --policy rules      the rule table's choice (no measuring)
  ppl compare toy_bernoulli --estimators score,straight_through,concrete --seeds 3 --out runs/toy

estimator specs: 'auto' (follow --policy), one NAME for every stochastic node, or
node=NAME pairs separated by commas; options follow the name after colons, e.g.
score:baseline=loo or z=gumbel_softmax:temperature=0.3.
"""


# --------------------------------------------------------------------------- parsing helpers
def parse_model_opts(pairs) -> dict:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise UsageError(f"--model-opt {p!r} must look like key=value (e.g. latent=32,32)")
        k, v = p.split("=", 1)
        out[k] = _value(v)
    return out


# --------------------------------------------------------------------------- shared steps
def _settings(mod, args) -> dict:
    D = dict(mod.DEFAULTS)
    D.setdefault("objective", "elbo")
    for k in ("steps", "batch", "lr", "optimizer", "samples", "dtype", "policy", "objective"):
        v = getattr(args, k, None)
        if v is not None:
            D[k] = v
    if getattr(args, "estimator", None) is not None:
        D["estimators"] = args.estimator
    D.setdefault("estimators", "auto")
    for k in ("steps", "batch", "samples"):
        if int(D[k]) < 1:
            raise UsageError(f"--{k} must be >= 1, got {D[k]}")
    if float(D["lr"]) <= 0:
        raise UsageError(f"--lr must be > 0, got {D['lr']}")
    return D


def _model_arg(value: str) -> str:
    """MODEL: a bundled model's name or path/to/file.py:FUNCTION."""
    from .models import MODELS
    if value in MODELS or (".py:" in value and value.rsplit(":", 1)[1].isidentifier()):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(MODELS)}, or give "
                                     f"path/to/file.py:FUNCTION for a model of your own)")


def _build(mod, model_opts):
    """mod.build(**model_opts); an option it does not take is named with the ones it does."""
    name = getattr(mod, "USER", None) or mod.__name__.rsplit(".", 1)[-1]
    valid = list(inspect.signature(mod.build).parameters)
    for k in model_opts:
        if k not in valid:
            raise UsageError(f"--model-opt {k}: {name} has no such option; its options: {', '.join(valid)}")
    try:
        return mod.build(**model_opts)
    except ModelError:   # the model's own error (a user file's build names its line)
        raise
    except (TypeError, ValueError) as e:
        raise UsageError(f"--model-opt: {e}; the options of {name}: {', '.join(valid)}") from None


def _user_data(mod, args, model_opts, dtype):
    """--data / --eval-data read for the model's inputs; the model's input widths set from the data."""
    from .training.data import user_data
    from .models import MODELS, get
    widths = getattr(mod, "DATA_WIDTHS", None)
    if getattr(mod, "USER", None):   # the user's own model: its widths are its own; the data must match them
        graph = _build(mod, model_opts).order
        inputs = [n for n in graph if n.kind == "input"]
        binary = {n.inputs[1].name for n in graph if n.kind == "bernoulli_nll" and n.inputs[1].kind == "input"}
        d = user_data(args.data, [n.name for n in inputs], binary, eval_path=args.eval_data, dtype=np.dtype(dtype))
        for n in inputs:
            w = d["train"][n.name].shape[1]
            if w != n.width:
                raise UsageError(f"--data: input '{n.name}' of {mod.USER} has width {n.width}, but {args.data} has "
                                 f"{w} columns for it")
        return d, model_opts
    if widths is None:
        raise UsageError(f"--data: {args.model} trains on its own data; models that take --data: "
                         f"{', '.join(m for m in MODELS if hasattr(get(m), 'DATA_WIDTHS'))}")
    graph = _build(mod, model_opts).order
    inputs = [n.name for n in graph if n.kind == "input"]
    binary = {n.inputs[1].name for n in graph if n.kind == "bernoulli_nll" and n.inputs[1].kind == "input"}
    d = user_data(args.data, inputs, binary, eval_path=args.eval_data, dtype=np.dtype(dtype))
    for k, opt in widths.items():
        w = d["train"][k].shape[1]
        if model_opts.get(opt, w) != w:
            raise UsageError(f"--model-opt {opt}={model_opts[opt]}, but input '{k}' of {args.data} has {w} "
                             f"columns; leave {opt} out, the data sets it")
        model_opts = {**model_opts, opt: w}
    return d, model_opts



# --------------------------------------------------------------------------- the options every command takes
def _common(sp, train_opts=True):
    """The options every command takes (train_opts: also the training settings; "compare": no autotune)."""
    from .models import MODELS

    sp.add_argument("model", type=_model_arg, metavar="MODEL",
                    help=f"one of: {', '.join(MODELS)}; or your own, path/to/file.py:FUNCTION (a function "
                         f"returning a ppl.Model; its data with --data FILE)")
    sp.add_argument("--policy", choices=(["measured", "autotune"] if train_opts != "compare" else []) +
                    ["rules", "unbiased", "fast"], default=None,
                    help="how 'auto' picks estimators: " +
                         ("" if train_opts == "compare" else
                          "measured (the model's default: the unbiased candidates that share a drawn row "
                          "measured on a batch of training rows in one program, the others each in a program "
                          "of its own, the least variance x work kept; explain prints the table; autotune is "
                          "its former name), ") +
                         "rules (the rule table's unbiased choice; unbiased is its former name), "
                         "fast (the rule table's, biased low-variance estimators allowed)")
    sp.add_argument("--samples", type=int, default=None, help="draws per data row K (model default)")
    sp.add_argument("--objective", choices=["elbo", "iwae"], default=None,
                    help="elbo (default) or iwae: the importance-weighted bound of the K draws of each "
                         "data row (needs --samples >= 2)")
    sp.add_argument("--dtype", choices=["float32", "float64"], default=None, help="model default")
    sp.add_argument("--model-opt", action="append", metavar="KEY=VALUE",
                    help="a build() option of the model, e.g. latent=32,32 (repeatable)")
    if train_opts:
        sp.add_argument("--steps", type=int, default=None, help="training steps (model default)")
        sp.add_argument("--batch", type=int, default=None, help="data rows per step (model default)")
        sp.add_argument("--lr", type=float, default=None, help="learning rate (model default)")
        sp.add_argument("--optimizer", choices=["adam", "sgd", "momentum"], default=None)
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        sp.add_argument("--out", metavar="DIR", help="write parameters, checkpoint and report here")


