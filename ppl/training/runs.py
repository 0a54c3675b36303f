"""Training runs as a library: the estimator spec strings, a run's compile and its
gradient-variance column, shared by the command line (ppl.cli) and the sweeps of
ppl.distributed (which import this module, never each other's private helpers).
"""
from __future__ import annotations

import numpy as np


class UsageError(Exception):
    """A bad command-line value; reported like argparse's own errors (exit status 2)."""


def _value(s: str):
    if "," in s:
        return tuple(_value(p) for p in s.split(",") if p)
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def parse_estimators(spec: str):
    """'auto' | 'NAME[:k=v...]' | 'node=NAME[:k=v...],node2=...' -> what Model.compile takes."""
    spec = spec.strip()
    if not spec:
        raise UsageError("--estimator is empty; use 'auto', a name such as 'score', or node=NAME pairs")
    if spec == "auto":
        return "auto"

    def one(item):
        name, *opts = item.split(":")
        options = {}
        for o in opts:
            if "=" not in o:
                raise UsageError(f"--estimator: option {o!r} of '{name}' must look like key=value "
                                 f"(e.g. score:baseline=loo)")
            k, v = o.split("=", 1)
            options[k] = _value(v)
        return (name, options) if options else name

    items = [s for s in spec.split(",") if s]
    if all("=" not in it.split(":")[0] for it in items):
        if len(items) != 1:
            raise UsageError(f"--estimator {spec!r}: give one name for every node, or node=NAME pairs "
                             f"(e.g. h1=score,h2=straight_through)")
        return one(items[0])
    out = {}
    for it in items:
        head = it.split(":")[0]
        if "=" not in head:
            raise UsageError(f"--estimator: {it!r} mixes a bare name with node=NAME pairs; write node=NAME")
        node, rest = it.split("=", 1)
        out[node] = one(rest)
    return out


def compile_run(model, D: dict, seed: int, estimators, target: str = "cpu", pilot=None):
    """`model` compiled for a training run with settings D (policy, dtype, samples, objective);
    estimators: a spec string as parse_estimators reads it, or what compile takes."""
    est = parse_estimators(estimators) if isinstance(estimators, str) else estimators
    return model.compile(estimators=est, policy=D["policy"], dtype=np.dtype(D["dtype"]), samples=int(D["samples"]),
                         seed=seed, target=target, objective=D["objective"], pilot=pilot)


def gradient_variance(prog, data, batch, draws=100) -> float:
    """`ppl compare`'s gradient-variance column: ppl.diagnostics.gradient_variance (the model
    parameters only), `batch` rows drawn when the model has no inputs."""
    from ..runtime.diagnostics import gradient_variance as gv
    return gv(prog, data, draws, batch=None if data is not None else batch)
