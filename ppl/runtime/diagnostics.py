"""Estimator diagnostics: the mean, variance and (where enumeration is feasible) bias of each
parameter's gradient, for any list of estimators side by side, at the same parameters.

    stats = ppl.diagnostics.gradient_stats(model, {"x": batch}, ["score", "disarm", "rebar"])
    print(ppl.diagnostics.table(stats))

The exact gradient comes from compiling the model with every discrete node enumerated (no
sampling is left when the model has no continuous random nodes); otherwise bias is None.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..distributions import DISTRIBUTIONS
from ..errors import ModelError

from ..estimators import estimator_params


@dataclass
class GradientStats:
    estimator: str
    mean: dict          # parameter -> mean gradient
    var: dict           # parameter -> per-entry variance of one estimate
    bias: dict | None   # parameter -> mean - exact (None when no exact gradient)
    draws: int
    seconds_per_estimate: float
    proj: float | None = None      # mean of <g, exact> / |exact|^2 over the draws (1 = unbiased)
    proj_se: float | None = None   # its standard error: a relative bias of 4 proj_se is detectable
    warm: int = 0                  # steps that warmed the estimator's state before the draws

    @property
    def total_variance(self) -> float:
        """The trace of the gradient's covariance: the per-entry variances summed."""
        return float(sum(v.sum() for v in self.var.values()))

    @property
    def max_abs_bias_in_se(self) -> float | None:
        """Largest |bias| / standard error over all entries (about <= 4 for an unbiased estimator)."""
        if self.bias is None:
            return None
        worst = 0.0
        for k, b in self.bias.items():
            se = np.sqrt(self.var[k] / self.draws)
            worst = max(worst, float(np.max(np.abs(b) / np.maximum(se, 1e-12))))
        return worst


def _given_params(params) -> dict:
    """{name: float64 array} of a params dict, or of a Program's model parameters."""
    if hasattr(params, "model_param_names"):
        return {k: np.array(params.params[k], dtype=np.float64) for k in params.model_param_names()}
    if not isinstance(params, dict):
        raise ModelError(f"gradient_stats: params must be {{name: array}} or a Program, got {type(params).__name__}")
    return {k: np.array(v, dtype=np.float64) for k, v in params.items()}


def exact_gradient(model, data, batch=None, params=None, **compile_kw):
    """(loss, {param: gradient}) by enumerating every discrete node, or None when the model has
    continuous random nodes or a support too large to enumerate."""
    nodes = [n for n in model.order if n.is_stochastic]
    if any(not DISTRIBUTIONS[n.kind].discrete for n in nodes):
        return None
    compile_kw.setdefault("dtype", np.float64)   # an oracle: exact sums in double precision
    try:
        prog = model.compile(estimators="enumerate", **compile_kw)
    except ModelError:
        return None
    if params:
        for k, v in params.items():
            if k in prog.params:
                prog.params[k] = v
    loss, g = prog.grad(data, seed=0, batch=batch)
    return loss, g


def tune_estimator(prog, data, steps, batch=None, lr=0.01):
    """Train only the estimator's own parameters (learned baselines, control variates, REBAR's
    eta and temperature) and state (running baselines) for `steps` steps; the model's
    parameters stay as they are."""
    own = np.zeros(prog.theta.shape, dtype=bool)
    for name, off, shape, _ in prog.layout.params:
        own[off: off + int(np.prod(shape))] = name.startswith(estimator_params())
    adam_steps(prog, data, own, lr, [(50_000 + t, 0) for t in range(steps)], batch)


def adam_steps(prog, data, which, lr, draws, batch=None) -> None:
    """Adam steps (fresh moments) of the entries of theta where `which` (a boolean mask) holds, one
    per (seed, step) of `draws`, each from that draw's gradient on `data`; the others stay."""
    from ..kernels.cpu.core import adam_update
    m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    for t, (seed, step) in enumerate(draws):
        prog.grad(data, seed=seed, step=step, batch=batch)
        prog.grad_buffer[~which] = 0
        adam_update(prog.theta, prog.grad_buffer, m, v, lr, 0.9, 0.999, 1e-8, t + 1)
    prog.push()


DRAW_SEED = 10_000   # gradient draw s of a measurement is the step at seed DRAW_SEED + s
WARM_SEED = 50_000   # warm-up step t of a measurement is the step at seed WARM_SEED + t
WARM_STEPS = 20      # steps that warm the estimators' state before the draws (as training runs them)


def warm_state(prog, data, steps: int = WARM_STEPS, batch=None) -> None:
    """Run `steps` gradient steps (seeds WARM_SEED + t) at the current parameters, which stay as
    they are: the estimators' running state (a score function's moving-average baseline) moves
    as training moves it, from its value now."""
    for t in range(int(steps)):
        prog.grad(data, seed=WARM_SEED + t, batch=batch)


def gradient_draws(prog, data, draws: int, batch=None, warm: int = WARM_STEPS) -> dict:
    """{model parameter: (draws, *shape) array} of `draws` gradient estimates at the current
    parameters, draw s at seed DRAW_SEED + s. The estimators are measured as training runs them:
    their state is first warmed for `warm` steps from its value now (warm_state; a fresh program's
    running baseline is otherwise at its initial value, which training leaves in a few steps), and
    every draw starts from that warmed state (a draw does not learn from the others). The
    program's state is restored after."""
    names = prog.model_param_names()
    g_all = {k: [] for k in names}
    prog.pull()   # the host's copy of the state is current (a CUDA program's lives on the device)
    state = prog.state.copy()
    try:
        warm_state(prog, data, warm, batch)
        prog.pull()
        warmed = prog.state.copy()
        for s in range(draws):
            prog.state[:] = warmed
            prog.push()
            _, g = prog.grad(data, seed=DRAW_SEED + s, batch=batch)
            for k in names:
                g_all[k].append(g[k])
    finally:
        prog.pull()
        prog.state[:] = state
        prog.push()
    return {k: np.array(v) for k, v in g_all.items()}


def gradient_variance(prog, data, draws: int = 100, batch=None, warm: int = WARM_STEPS) -> float:
    """Trace of the covariance of the model parameters' gradient (the estimators' own parameters
    -- learned baselines, RELAX's control variate, REBAR's eta and temperature -- excluded) over
    `draws` draws at the current parameters, the state warmed first (gradient_draws):
    GradientStats.total_variance of the same draws."""
    G = gradient_draws(prog, data, draws, batch, warm)
    return float(sum(v.var(0, ddof=1).sum() for v in G.values()))


def gradient_stats(model, data, estimators, draws=500, batch=None, seed=0, exact=True, warmup=0,
                   warm=WARM_STEPS, params=None, **compile_kw):
    """One GradientStats per estimator spec (a name or (name, options) for every node, or a dict
    per node), all at the parameters of the first program compiled (init seed `seed`), or at
    `params`: {model parameter name: array}, or a Program (a trained one) whose model parameters
    are taken. Each is measured as training runs it: its running state warmed for `warm` steps
    first (gradient_draws; warm=0 measures it at its initial value). With `warmup` > 0 each
    estimator's own parameters are first tuned for that many steps too (see tune_estimator), so
    learned baselines and control variates are compared trained."""
    ref = None if params is None else _given_params(params)
    out = []
    draws_of = {}
    compile_kw.setdefault("dtype", np.float64)   # variances and biases against a float64 oracle
    for spec in estimators:
        prog = model.compile(estimators=spec, seed=seed, **compile_kw)
        names = prog.model_param_names()
        if ref is None:
            ref = {k: prog.params[k].copy() for k in names}
        else:
            missing = [k for k in names if k not in ref]
            if missing:
                raise ModelError(f"gradient_stats: params has no {missing}; give every model parameter of "
                                 f"'{model.name}' ({names}), or a Program of this model")
            for k in names:
                if np.shape(ref[k]) != prog.params[k].shape:
                    raise ModelError(f"gradient_stats: params[{k!r}] has shape {np.shape(ref[k])}, the model's is "
                                     f"{prog.params[k].shape}")
                prog.params[k] = ref[k]
        if warmup:
            tune_estimator(prog, data, warmup, batch=batch)
        t0 = time.perf_counter()
        g_all = gradient_draws(prog, data, draws, batch, warm)
        dt = (time.perf_counter() - t0) / (draws + warm)
        mean = {k: np.mean(v, 0) for k, v in g_all.items()}
        var = {k: np.var(v, 0, ddof=1) for k, v in g_all.items()}
        label = spec if isinstance(spec, str) else repr(spec)
        out.append(GradientStats(label, mean, var, None, draws, dt, warm=warm))
        draws_of[id(out[-1])] = g_all
    if exact and ref is not None:
        ex = exact_gradient(model, data, batch=batch, params=ref, seed=seed,
                            **{k: v for k, v in compile_kw.items() if k != "samples"})
        if ex is not None:
            for st in out:
                st.bias = {k: st.mean[k] - ex[1][k] for k in st.mean}
                e = np.concatenate([np.ravel(ex[1][k]) for k in st.mean])
                ee = float(e @ e)
                if ee > 0:   # the projection of every draw on the exact gradient pools all entries
                    G = np.concatenate([np.reshape(draws_of[id(st)][k], (draws, -1)) for k in st.mean], 1)
                    p = G @ e / ee
                    st.proj, st.proj_se = float(p.mean()), float(p.std(ddof=1) / np.sqrt(draws))
    return out


def table(stats) -> str:
    """Markdown table: estimator | total gradient variance (its state warmed so many steps) | max
    |bias| / SE | projection on the exact gradient (1 = unbiased) +- SE | us per estimate."""
    warm = sorted({st.warm for st in stats})
    lines = [f"| estimator | total gradient variance (state warmed {'/'.join(map(str, warm))} steps) | max abs "
             f"bias / SE | mean . exact / abs(exact)^2 | us per estimate |", "|---|---|---|---|---|"]
    for st in stats:
        b = st.max_abs_bias_in_se
        pr = "n/a" if st.proj is None else f"{st.proj:.4f} +- {st.proj_se:.4f}"
        lines.append(f"| {st.estimator} | {st.total_variance:.4g} | {'n/a' if b is None else f'{b:.1f}'} | {pr} | "
                     f"{st.seconds_per_estimate * 1e6:.1f} |")
    return "\n".join(lines)

__all__ = ["gradient_stats", "gradient_variance", "gradient_draws", "exact_gradient", "tune_estimator", "table",
           "GradientStats"]   # the public names (ppl.diagnostics.*)
