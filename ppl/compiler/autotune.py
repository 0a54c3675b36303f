"""The "autotune" policy: an unbiased estimator per stochastic node, chosen by measuring the
candidates on pilot data, the same choice on every run with the same seed.

Candidates. For a node, the unbiased estimators that apply to it under the program's objective,
less those an estimator declares not worth measuring (its `not_measured`): ARM where DisARM
applies (DisARM is ARM with the pair's shared uniform integrated out given the two draws, a
Rao-Blackwellisation: never more variance, the same two rows; Dong, Mnih & Tucker 2020), RELAX
where every path to the costs is differentiable (its control variate is a network trained with
the model, so its variance at initialisation says nothing of its variance in training; REBAR,
RELAX with the model's own relaxed f as control variate, is measured instead; Grathwohl et al.
2018), enumeration of more than `enumerate.MAX_ENUMERATION` values, double_cv, rodeo and lax
(their control variates, too, are trained with the model; BENCHMARKS.md), and mvd on a node
where it makes more than `mvd.AUTOTUNE_ROWS` rows per draw (one per unit: its pilot alone would
cost that many steps). ARMS (n rows per draw) and mvd on narrow nodes are measured: the score
below weighs their variance by their rows.

Measurements, per candidate program at the initial parameters:
- variance: the trace of the covariance of the model-parameter gradient over `DRAWS` estimates
  drawn with (seed, step s), s = 0 .. DRAWS - 1: the same draws on every run and, as common
  random numbers, for every candidate; estimator state (running baselines) is reset before each
  draw. It is a deterministic function of the model, the pilot data and the seed. Its standard
  error comes from the spread of the draws' squared deviations. The node's current choice is
  measured first; a candidate whose score (below) after `EARLY_DRAWS` draws is more than
  `STOP_FACTOR` (3) times the least so far, with a relative standard error under 1/2, takes no
  more draws (a REBAR step costs up to ten DisARM steps): also a function of the seed.
- rows: the rows the step evaluates per data row (K samples x S configurations: 2 for an
  antithetic pair, 3 or 5 for REBAR, the support for enumeration), the cost model. Counted,
  not timed, so it is the same on every run.
- time: seconds per step in each of `ROUNDS` rounds, every candidate timed once per round (a
  block of steps of about `BLOCK_SECONDS`), interleaved so that the candidates share the
  machine's conditions. Another process only ever adds time, and a contended block can take
  many times the step (measured: a median of 60 ms for a 1.2 ms step, BLAS on two threads while
  another job held the second core), so the table shows the fastest round, and comparisons use the median of the
  paired per-round ratios. Still a measurement, so it only breaks ties (below).

Decision per node (`decide`): score = variance x rows, the variance of an average of estimates
that evaluate the same number of rows (variance per unit of work). Candidates whose score is
within the tie margin of the least score -- `TIE_MARGIN` (10%) or two standard errors of the
ratio, whichever is larger -- are tied: the data do not tell them apart. Among the tied ones
the fewest rows win; where several tied candidates have those rows, the cost model cannot
separate them, and time does: any whose time per step is more than `TIME_MARGIN` (2x) the
fastest one's, as the median over the rounds of the paired ratios (each round's blocks run
back to back, under the same load), drops out; of the rest the rule table's choice for the
node wins, then the name. Everything but the time tie-break is a function of the seed; that
one only separates candidates equal in score and rows, and flips only if a time ratio sits
within the noise of 2x. (The cost model counts rows, not the work per row: REBAR's per-row
relaxations cost more than a score-function row, which the table's times show.)

Nodes are tuned one at a time in topological order (the data side first), each with the other
nodes at their current choice (the rule table's "unbiased" default until tuned): one sweep of
coordinate descent. A joint search would compile the product of the candidate counts (3^L for
L Bernoulli layers); the sweep compiles their sum, and since the variance measured is the whole
model-parameter gradient's and the cost the whole step's rows (antithetic pairs on two nodes
make 4 rows per draw), each node's choice accounts for what the nodes before it chose.
Programs are compiled once per assignment of estimators (the incumbent of one node is a
candidate of the next; the winner is the program returned).

`Program.autotune_table` holds one row per (node, candidate) -- excluded ones with the rule --
and `Program.explain()` prints it.
"""
from __future__ import annotations

import math
import time

import numba
import numpy as np

from ..analysis import graph as G
from ..errors import ModelError
from ..estimators import REGISTRY
from .selection import select

DRAWS = 32               # gradient estimates per candidate for its variance
TIE_MARGIN = 0.10        # scores within 10% (or two standard errors) of the least are tied
TIME_MARGIN = 1.0        # among tied candidates of equal rows, those > 2x the fastest time drop out
ROUNDS = 5               # interleaved timing rounds (paired ratios compared; the table shows the fastest)
RULE = (f"variance = trace of the model-parameter gradient's covariance over {DRAWS} fixed draws at the initial "
        f"parameters; score = variance x rows per data row; scores within {TIE_MARGIN:.0%} (or 2 SE) of the least "
        f"are tied; among the tied the fewest rows win, then (same rows) any > {1 + TIME_MARGIN:g}x the fastest "
        f"time drops out, then the rule table's choice; us/step: the fastest of {ROUNDS} interleaved rounds")
BLOCK_SECONDS = 0.01     # steps per timed block: about this long
EARLY_DRAWS = 8          # a candidate whose score is then > STOP_FACTOR x the least so far stops there
STOP_FACTOR = 3.0

def not_measured(name: str, info) -> str | None:
    """Why autotune neither compiles nor measures estimator `name` for a node (its declared
    `not_measured`), else None."""
    return REGISTRY[name].not_measured(info)


@numba.njit(cache=True)
def _steps(step, n, theta, grad, state, ws2, ws1, inputs, B, seed):
    """n gradient steps of a compiled program (a first-class function value) at fixed theta."""
    for t in range(n):
        step(theta, grad, state, ws2, ws1, inputs, B, seed, t, 1)


class Candidate:
    """One estimator measured for one node (a row of `Program.autotune_table`)."""

    def __init__(self, node, estimator, variance=math.nan, se=math.nan, rows=0, blocks=(), verdict=""):
        self.node, self.estimator = node, estimator
        self.variance, self.se, self.rows, self.verdict = variance, se, rows, verdict
        self.blocks = list(blocks)   # seconds per step of each timed round
        self.draws = 0               # gradient estimates behind the variance
        self.chosen = False

    @property
    def seconds(self) -> float:
        """Seconds per step: the fastest round's."""
        return min(self.blocks) if self.blocks else math.nan

    @property
    def measured(self) -> bool:
        return self.rows > 0

    @property
    def score(self) -> float:
        """Gradient variance x rows per data row (variance per unit of work)."""
        v = self.variance * self.rows
        return v if math.isfinite(v) else math.inf

    def as_dict(self) -> dict:
        return {"node": self.node, "estimator": self.estimator, "variance": self.variance, "se": self.se,
                "rows": self.rows, "score": self.score if self.measured else math.nan,
                "us_per_step": self.seconds * 1e6, "draws": self.draws, "chosen": self.chosen, "why": self.verdict}


def decide(cands: list, default: str) -> Candidate:
    """The candidate chosen among measured `cands` (the module's rule), each given its verdict."""
    best = min(cands, key=lambda c: (c.score, c.estimator))
    if not math.isfinite(best.score):
        pick = next((c for c in cands if c.estimator == default), cands[0])
        for c in cands:
            c.verdict = "non-finite gradient variance"
        pick.verdict = "every candidate's gradient variance is non-finite: the rule table's choice"
        pick.chosen = True
        return pick

    def rse(c):
        return c.se / c.variance if c.variance > 0 and math.isfinite(c.se) else 0.0

    tied = []
    for c in cands:
        margin = max(TIE_MARGIN, 2 * math.hypot(rse(c), rse(best)))
        if c.score <= best.score * (1 + margin):
            tied.append(c)
        else:
            c.verdict = (f"score {c.score / best.score:.2f}x the least" if best.score > 0 else
                         f"score {c.score:.3g}, the least is 0")
            if 0 < c.draws < DRAWS:
                c.verdict += f" (stopped after {c.draws} draws)"
    fewest = min(c.rows for c in tied)
    level = [c for c in tied if c.rows == fewest]
    for c in tied:
        if c.rows > fewest:
            c.verdict = "tied on score, more rows per data row"
    quick = level
    if len(level) > 1:
        fastest = min(level, key=lambda c: (float(np.median(c.blocks)), c.estimator))
        quick = []
        for c in level:
            ratio = float(np.median(np.array(c.blocks) / np.array(fastest.blocks)))
            if ratio > 1 + TIME_MARGIN:
                c.verdict = f"tied on score and rows, {ratio:.1f}x the time of '{fastest.estimator}'"
            else:
                quick.append(c)
    pick = min(quick, key=lambda c: (c.estimator != default, c.estimator))
    for c in quick:
        if c is not pick:
            c.verdict = (f"tied on score and rows: '{pick.estimator}' " +
                         ("is the rule table's choice" if pick.estimator == default else "comes first by name"))
    others = [c.estimator for c in tied if c is not pick]
    if not others:
        pick.verdict = "least variance x rows"
    elif len(level) == 1:
        pick.verdict = f"tied on score with {', '.join(others)}; the fewest rows"
    else:
        pick.verdict = (f"tied on score with {', '.join(others)}; the fewest rows, " +
                        ("and more than 2x faster than the others with them" if len(quick) == 1 else
                         "the rule table's choice" if pick.estimator == default else "first by name"))
    pick.chosen = True
    return pick


def _moments(g):
    """(trace of the covariance of the rows of g, its standard error)."""
    n = g.shape[0]
    d = ((g - g.mean(0)) ** 2).sum(1)             # each draw's squared deviation; their sum / (n - 1) = trace
    var = float(d.sum() / (n - 1))
    se = float(d.std(ddof=1) * math.sqrt(n) / (n - 1))
    return (var, se) if math.isfinite(var) else (math.inf, math.inf)


def _variance(prog, data, batch, seed, stop_above=math.inf):
    """(trace of the model-parameter gradient's covariance over DRAWS fixed draws, its standard
    error, the draws taken): after EARLY_DRAWS, a candidate whose variance x rows is more than
    stop_above (with a relative standard error under 1/2) is not drawn further."""
    names = prog.model_param_names()
    prog.pull()
    theta, state = prog.theta.copy(), prog.state.copy()
    g = []
    for s in range(DRAWS):
        prog.state[:] = state
        prog.push()
        _, gr = prog.grad(data, seed=seed, step=s, batch=batch)
        g.append(np.concatenate([gr[k].ravel() for k in names]).astype(np.float64))
        if s + 1 == EARLY_DRAWS:
            var, se = _moments(np.array(g))
            if var * prog.rows_per_data_row > stop_above and se < var / 2:
                break
    prog.theta[:], prog.state[:] = theta, state
    prog.push()
    return _moments(np.array(g)) + (len(g),)


def _runner(prog, data, batch, seed):
    """A function n -> None taking n gradient steps of prog (theta unchanged)."""
    if prog.target != "cpu":
        def run_python(n):
            for t in range(n):
                prog.grad(data, seed=seed, step=t, batch=batch)
        return run_python
    args = prog.args(data, batch) + (np.uint64(seed),)
    typ = tuple(numba.typeof(a) for a in (prog.theta, prog.grad_buffer, prog.state, *args[3:6], args[6],
                                          np.uint64(0), np.int64(0), 1))
    if typ not in prog.entry.overloads:
        prog.entry.compile(typ)
    fn = numba.types.FunctionType(prog.entry.overloads[typ].signature)
    sig = (fn, numba.types.int64) + tuple(numba.typeof(a) for a in args)
    loop = _steps.compile(sig)

    def run(n):
        loop(prog.entry, n, *args)
    return run


def _times(progs, data, batch, seed) -> list:
    """Seconds per step of each program in each of ROUNDS interleaved rounds."""
    saved = []
    runs, ns = [], []
    for p in progs:
        p.pull()
        saved.append(p.state.copy())
        run = _runner(p, data, batch, seed)
        run(1)                                   # warm
        t0 = time.perf_counter()
        run(1)
        ns.append(max(1, int(BLOCK_SECONDS / max(time.perf_counter() - t0, 1e-7))))
        runs.append(run)
    per = [[] for _ in progs]
    for _ in range(ROUNDS):
        for i, run in enumerate(runs):
            t0 = time.perf_counter()
            run(ns[i])
            per[i].append((time.perf_counter() - t0) / ns[i])
    for p, s in zip(progs, saved):
        p.state[:] = s
        p.push()
    return per


def autotune(model, compile_program, options):
    """The program with the estimator per node the module's rule chooses under `options` (a
    CompileOptions); `compile_program(model, options)` is the compiler's entry point (passed in:
    the compiler calls this module, not the reverse)."""
    estimators, samples, baseline, seed = options.estimators, options.samples, options.baseline, options.seed
    pilot, lowering, objective = options.pilot, options.lowering, options.objective
    if pilot is None:
        raise ModelError("policy 'autotune' needs pilot data: compile(..., policy='autotune', pilot={'x': batch}) "
                         "(for a model without inputs, pilot=N rows)")
    data, batch = (None, int(pilot)) if isinstance(pilot, (int, np.integer)) else (pilot, None)
    an = G.analyse(model)
    base = select(model, an, estimators, "unbiased", int(samples), baseline, objective)
    if isinstance(estimators, dict):
        fixed = set(estimators)
    elif estimators == "auto":
        fixed = set()
    else:                                         # one estimator for every node: nothing to tune
        fixed = {n.name for n in base}
    chosen = {n.name: (ch.estimator, dict(ch.options) if n.name in fixed else {}) for n, (ch, _) in base.items()}
    cand_lowering = "arrays" if lowering == "arrays" else "auto"
    programs = {}

    def program(assign):
        key = tuple((k, e, repr(sorted(o.items()))) for k, (e, o) in sorted(assign.items()))
        if key not in programs:
            programs[key] = compile_program(model, options.replace(estimators=dict(assign), policy="unbiased",
                                                                   pilot=None, lowering=cand_lowering))
        return programs[key]

    variances = {}
    table = []
    for node, (ch, info) in base.items():
        if node.name in fixed:
            continue
        rows, progs = [], []
        incumbent = chosen[node.name][0]          # measured first: the reference of the early stop
        for name, est in sorted(REGISTRY.items(), key=lambda kv: (kv[0] != incumbent, kv[0])):
            if not est.unbiased or est.applies(info) is not None:
                continue
            why = not_measured(name, info)
            if why is not None:
                rows.append(Candidate(node.name, name, verdict=f"excluded: {why}"))
                continue
            trial = dict(chosen)
            trial[node.name] = (name, {})
            try:
                prog = program(trial)
            except ModelError as e:
                rows.append(Candidate(node.name, name, verdict=f"excluded: {e}"))
                continue
            if id(prog) in variances:
                var, se, n = variances[id(prog)]
            else:
                least = min((c.score for c, _ in progs), default=math.inf)
                var, se, n = _variance(prog, data, batch, seed, STOP_FACTOR * least)
                if n == DRAWS:
                    variances[id(prog)] = var, se, n
            c = Candidate(node.name, name, var, se, prog.rows_per_data_row)
            c.draws = n
            rows.append(c)
            progs.append((c, prog))
        for c, t in zip([c for c, _ in progs], _times([p for _, p in progs], data, batch, seed)):
            c.blocks = t
        pick = decide([c for c, _ in progs], ch.estimator)
        chosen[node.name] = (pick.estimator, {})
        rows.sort(key=lambda c: (not c.measured, c.score if c.measured else 0.0, c.estimator))
        table.extend(rows)
    if lowering in ("auto", "arrays"):
        prog = program(chosen)                    # the measurements restored its theta and state
    else:
        prog = compile_program(model, options.replace(estimators=chosen, policy="unbiased", pilot=None))
    for node, (ch, _) in prog.choices.items():
        if node.name not in fixed:
            pick = next(c for c in table if c.node == node.name and c.chosen)
            ch.reason = f"autotune: {pick.verdict} (see the autotune table)"
    prog.autotune_table = [c.as_dict() for c in table]
    prog.autotune_rule = RULE
    return prog
