"""The "autotune" policy: for every stochastic node (one at a time, the others at their
"unbiased" default), compile each applicable unbiased estimator, measure on pilot batches the
variance of the model-parameter gradient and the time per step, and keep the estimator with
the least variance x time. The measurements are shown by `Program.explain()`."""
from __future__ import annotations

import time

import numba
import numpy as np

from . import graph as G
from .dsl import ModelError
from .selection import select
from .estimators import REGISTRY

PILOT_DRAWS = 32           # gradient estimates per candidate for the variance


@numba.njit
def _time_loop(entry, n, theta, grad, state, ws2, ws1, inputs, B):
    for t in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(7), t, 1)


def _measure(prog, data, batch):
    """(summed gradient variance of the model parameters, seconds per step)."""
    names = prog.model_param_names()
    saved = prog.state.copy()
    grads = []
    for s in range(PILOT_DRAWS):
        _, g = prog.grad(data, seed=10_000 + s, batch=batch)
        grads.append(np.concatenate([g[k].ravel() for k in names]))
    var = float(np.var(np.array(grads), axis=0, ddof=1).sum())
    theta = prog.theta.copy()
    args = prog.args(data, batch)
    _time_loop(prog.entry, 2, *args)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.05:
        _time_loop(prog.entry, 20, *args)
        n += 20
    per_step = (time.perf_counter() - t0) / n
    prog.theta[:] = theta
    prog.state[:] = saved
    return var, per_step


def autotune(model, compile_model, estimators, dtype, samples, baseline, seed, target, cache, pilot,
             lowering="auto", objective="elbo"):
    """Compile with the least variance x time estimator per node; `compile_model` is the
    compiler's entry point (passed in: the compiler calls this module, not the reverse)."""

    if pilot is None:
        raise ModelError("policy 'autotune' needs pilot data: compile(..., policy='autotune', pilot={'x': batch}) "
                         "(for a model without inputs, pilot=N rows)")
    data, batch = (None, int(pilot)) if isinstance(pilot, (int, np.integer)) else (pilot, None)
    an = G.analyse(model)
    base = select(model, an, estimators, "unbiased", int(samples), baseline, objective)
    fixed = dict(estimators) if isinstance(estimators, dict) else {}
    chosen = {n.name: (ch.estimator, {}) for n, (ch, _) in base.items()}
    report = {}
    for node, (ch, info) in base.items():
        if node.name in fixed:
            continue
        rows = []
        for name, est in sorted(REGISTRY.items()):
            if not est.unbiased or est.applies(info) is not None:
                continue
            trial = dict(chosen)
            trial[node.name] = (name, {})
            try:
                prog = compile_model(model, estimators=trial, policy="unbiased", dtype=dtype, samples=samples,
                                     baseline=baseline, seed=seed, target=target, cache=cache,
                                     lowering="arrays" if lowering == "arrays" else "auto", objective=objective)
            except ModelError:
                continue  # e.g. a support too large to enumerate
            var, dt = _measure(prog, data, batch)
            rows.append((var * dt, name, var, dt))
        rows.sort()
        chosen[node.name] = (rows[0][1], {})
        report[node.name] = rows
    prog = compile_model(model, estimators=chosen, policy="unbiased", dtype=dtype, samples=samples,
                         baseline=baseline, seed=seed, target=target, cache=cache, lowering=lowering,
                         objective=objective)
    for node, (ch, _) in prog.choices.items():
        if node.name in report:
            ch.reason = "autotune: least gradient variance x time per step on the pilot data"
            ch.measurements = report[node.name]
    return prog
