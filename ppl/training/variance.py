"""The gradient variance along a training run (fit's `track_variance`): every so many steps, at
the parameters of that step and with the estimators' state as training has brought it there,
`draws` gradient estimates on one fixed batch; per layer of the model's parameters, the trace of
their covariance and its standard error, recorded in History.variance.

    hist = ppl.fit(prog, {"x": x}, ppl.optim.Adam(1e-3), steps=2000, track_variance=200)
    hist.variance["step"], hist.variance["layers"]["q1"]["var"], hist.variance["layers"]["q1"]["se"]

The draws are ppl.diagnostics.gradient_draws' (the rule of gradient_stats and of the measured
choice): the running state warmed WARM_STEPS steps from its value in training, then every draw
from that warmed state, draw s at seed DRAW_SEED + s. They run on the training program between
two chunks of steps; they leave its parameters as they are and put its estimator state, gradient
buffer and step guard back as they were, so the run trains the same bits with and without
tracking.
"""
from __future__ import annotations

import numbers
import time

import numpy as np

from ..compiler.measure import moments
from ..errors import ModelError
from ..runtime.diagnostics import WARM_STEPS, gradient_draws

DRAWS = 100   # fit's variance_draws default: gradient estimates per measurement


def check_args(track_variance, variance_draws) -> tuple:
    """(every, draws): fit's track_variance (None when off) and variance_draws, checked; a
    ModelError names the argument, what is wrong with it and what to pass."""
    every = None
    if track_variance is not None and track_variance is not False:
        if isinstance(track_variance, (bool, np.bool_)) or not isinstance(track_variance, numbers.Integral):
            raise ModelError(f"fit: track_variance must be an integer number of steps (the gradient variance is "
                             f"measured every so many steps) or None (off), got {track_variance!r} "
                             f"({type(track_variance).__name__}); pass e.g. track_variance=100")
        every = int(track_variance)
        if every < 1:
            raise ModelError(f"fit: track_variance must be >= 1 (measure every so many steps), got {every}; pass "
                             f"e.g. track_variance=100, or None to measure nothing")
    if isinstance(variance_draws, (bool, np.bool_)) or not isinstance(variance_draws, numbers.Integral):
        raise ModelError(f"fit: variance_draws must be an integer number of gradient draws per measurement, got "
                         f"{variance_draws!r} ({type(variance_draws).__name__}); pass e.g. variance_draws={DRAWS}")
    draws = int(variance_draws)
    if draws < 2:
        raise ModelError(f"fit: variance_draws must be >= 2 (a variance needs two draws), got {draws}; pass e.g. "
                         f"variance_draws={DRAWS}")
    return every, draws


def layer_of(name: str) -> str:
    """The layer of a parameter: its name before the last '.' ('q1.W' -> 'q1'), or the name."""
    return name.rpartition(".")[0] or name


def layers(prog) -> dict:
    """{layer: [its model parameters]} in the program's order; the estimators' own parameters
    (learned baselines, RELAX's and REBAR's) are no layer."""
    out = {}
    for name in prog.model_param_names():
        out.setdefault(layer_of(name), []).append(name)
    return out


def layer_moments(draws: dict, groups: dict) -> dict:
    """{layer: (trace of the covariance of one estimate, its standard error)} of gradient draws
    {parameter: (D, *shape)}, by compiler/measure.moments over the layer's entries side by side:
    with d_s the squared distance of draw s from the draws' mean over those entries, the trace is
    sum(d_s) / (D - 1) (the per-entry variances summed, GradientStats.total_variance's) and its
    standard error sd(d_s) sqrt(D) / (D - 1) (that of a mean of the D values d_s)."""
    out = {}
    for layer, names in groups.items():
        g = np.concatenate([np.reshape(draws[k], (draws[k].shape[0], -1)) for k in names], 1).astype(np.float64)
        out[layer] = moments(g)
    return out


def measure(prog, data, batch, draws: int, warm: int = WARM_STEPS) -> dict:
    """layer_moments of `draws` gradient estimates (gradient_draws: the state warmed `warm` steps
    first) at prog's parameters now; its parameters, state, gradient buffer and step guard are
    as they were after. A step that refuses its values (a ModelError) gives NaN."""
    prog.pull()
    grad, state = prog.grad_buffer.copy(), prog.state.copy()
    guard = None if getattr(prog, "_guard", None) is None else prog._guard.copy()
    groups = layers(prog)
    try:
        got = layer_moments(gradient_draws(prog, data, draws, batch, warm), groups)
    except ModelError:
        got = {layer: (float("nan"), float("nan")) for layer in groups}
    finally:
        prog.grad_buffer[:] = grad
        prog.state[:] = state
        if guard is not None:
            prog._guard[:] = guard
        prog.push()
    return got


def _rows(plan):
    """The row indices of the batch the run measures on (its step 0's), or None without inputs."""
    return plan.batches.rows(plan.first, 1) if plan.batches is not None else None


def check_resume(plan, hist) -> None:
    """A resumed run's record (hist.variance, from the checkpoint) continues with fit's
    track_variance: the same draws and batch, or a ModelError saying what to pass."""
    v = hist.variance
    if v is None or plan.track_variance is None:
        return
    if int(v["draws"]) != plan.variance_draws:
        raise ModelError(f"fit: the checkpoint's gradient variance was measured with {int(v['draws'])} draws; "
                         f"resume with variance_draws={int(v['draws'])} or start afresh (resume=False)")
    rows = _rows(plan)
    if (v["rows"] is None) != (rows is None) or (rows is not None and not np.array_equal(v["rows"], rows)):
        raise ModelError("fit: the checkpoint's gradient variance was measured on another batch (its rows differ: "
                         "another batch_size or data); resume with the run's batch_size and data, or start afresh "
                         "(resume=False)")


class Tracker:
    """fit's measurements of the gradient variance: due at every `every`-th step of the run
    (counted from its step 0) and at its last, on the batch of the run's step 0 (its rows drawn by
    seed: History.variance['rows']; for a model without inputs, batch_size rows drawn)."""

    def __init__(self, plan, prog, hist, every: int, draws: int):
        self.prog, self.hist, self.every, self.draws, self.total = prog, hist, every, draws, plan.total
        self.data, self.batch = plan.batch(0)
        self.rows = _rows(plan)
        self.seconds = 0.0   # wall time of the measurements (a resumed record: FitPlan.resume checked it)

    @classmethod
    def make(cls, plan, prog, hist):
        """The run's Tracker, or None when fit tracks nothing (plan.track_variance)."""
        return None if plan.track_variance is None else cls(plan, prog, hist, plan.track_variance,
                                                            plan.variance_draws)

    def due(self, t: int) -> bool:
        """Whether step t is measured: every `every` steps and the run's last, once."""
        if t % self.every and t != self.total:
            return False
        v = self.hist.variance
        return v is None or not len(v["step"]) or int(v["step"][-1]) != t

    def cap(self, t: int, n: int) -> int:
        """The steps of a chunk from step t, n at most, ending at the next measurement."""
        return max(1, min(n, (t // self.every + 1) * self.every - t))

    def start(self, t: int) -> float:
        """Measure at the run's first step t when due; the seconds it took."""
        if self.due(t):
            self.run(t)
        return self.seconds

    def run(self, t: int) -> None:
        """Measure at step t and record it in the History."""
        t0 = time.perf_counter()
        got = measure(self.prog, self.data, self.batch, self.draws)
        self.hist.add_variance(t, got, self.draws, self.rows)
        self.seconds += time.perf_counter() - t0
