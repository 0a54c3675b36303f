"""What measuring an estimator rests on (ppl/compiler/autotune.py): the measurements' sizes, a
candidate's record (`Candidate`: its variance, standard error, rows and work), the decision rule
(`decide`, `clear`, the tie margin), the moments of a set of gradient draws, the rows of a choice's
program (counted from its row plan) and the copy of parameters and state between programs."""
from __future__ import annotations

import math

import numpy as np

from .selection import select

DRAWS = 32               # gradient estimates per candidate for its variance, at most
SOLO_DRAWS = 64          # ... per program of its own, and for the choice it is compared with (one program each)
ROUND = 8                # ... drawn in rounds of this many; the sweep of a node stops when one is clearly least
WARMUP = 10              # steps before the draws: every candidate's state warmed as in training
LOOKAHEAD = 10           # the first measurement's: Adam steps (LOOKAHEAD_LR) from the initial parameters first
LOOKAHEAD_LR = 1e-3
MAX_ROWS = 32            # data rows of the batch it measures on, at most (the first ones)
TIE_MARGIN = 0.10        # scores within 10% (or two standard errors) of the least are tied
SOLO_MARGIN = 0.25       # ... 25% between programs: no common draws, and a time measured apart from training's
TIME_ROUNDS = 5          # a program of its own is timed against the measured choice's: alternating rounds,
TIME_BLOCK = 0.01        # ... of about this many seconds each, the median (0 rounds: its rows, counted, as
                         # the measured program's: every choice the same on every run, the time ignored)
TIME_ROWS = 1024         # ... on the batch's first rows, at most this many
SOLO_SHARE = 0.10        # a run of known length (fit, `ppl train`): its programs of their own measured only while
                         # their draws and timing cost at most this share of its training (alone.Alone.budget_solos)


class Candidate:
    """One estimator measured for one node (a row of `Program.autotune_table`)."""

    def __init__(self, node, estimator, variance=math.nan, se=math.nan, rows=0, verdict=""):
        self.node, self.estimator = node, estimator
        self.variance, self.se, self.rows, self.verdict = variance, se, rows, verdict
        self.draws = 0               # gradient estimates behind the variance
        self.chosen = False
        self.timed = None            # a program of its own: its time per estimate over the measured choice's

    @property
    def measured(self) -> bool:
        return self.rows > 0

    @property
    def work(self) -> float:
        """The work of one estimate, in rows per data row: its rows, counted, for a candidate of the
        measured program (their rows cost alike); for a program of its own, the measured choice's
        rows times the ratio of their times per estimate (its rows may cost more: ARMS's coupled
        draws, the alternative row's copies)."""
        return self.rows if self.timed is None else self.timed[1] * self.timed[0]

    @property
    def score(self) -> float:
        """Gradient variance x work per data row (variance per unit of work)."""
        v = self.variance * self.work
        return v if math.isfinite(v) else math.inf

    def as_dict(self) -> dict:
        return {"node": self.node, "estimator": self.estimator, "variance": self.variance, "se": self.se,
                "rows": self.rows, "work": self.work if self.measured else math.nan,
                "score": self.score if self.measured else math.nan, "draws": self.draws,
                "chosen": self.chosen, "why": self.verdict}


def decide(cands: list, default: str) -> Candidate:
    """The candidate chosen among measured `cands` (the module's rule), each given its verdict."""
    best = min(cands, key=lambda c: (c.score, c.rows, c.estimator))
    if not math.isfinite(best.score):
        pick = next((c for c in cands if c.estimator == default), cands[0])
        for c in cands:
            c.verdict = "non-finite gradient variance"
        pick.verdict = "every candidate's gradient variance is non-finite: the rule table's choice"
        pick.chosen = True
        return pick

    tied = []
    for c in cands:
        if not apart(c, best):
            tied.append(c)
        else:
            c.verdict = (f"score {c.score / best.score:.2f}x the least" if best.score > 0 else
                         f"score {c.score:.3g}, the least is 0")
    pick = min(tied, key=lambda c: (c.estimator != default, c.rows, c.estimator))
    others = [c.estimator for c in tied if c is not pick]
    for c in tied:
        if c is not pick:
            c.verdict = (f"tied on score with '{pick.estimator}', " +
                         ("the rule table's choice" if pick.estimator == default else
                          "which has fewer rows" if pick.rows < c.rows else "which comes first by name"))
    if not others:
        pick.verdict = "least variance x rows"
    else:
        pick.verdict = (f"tied on score with {', '.join(others)}; " +
                        ("the rule table's choice" if pick.estimator == default else "the fewest rows"))
    pick.chosen = True
    return pick


def clear(cands: list) -> bool:
    """Whether the measured `cands` already decide: the least score is apart from every other one
    by more than the tie margin (decide's rule), so more draws would not change the choice."""
    best = min(cands, key=lambda c: c.score)
    return math.isfinite(best.score) and all(c is best or apart(c, best) for c in cands)


def apart(c, best, margin: float = TIE_MARGIN) -> bool:
    """Whether candidate c's score is above the least one's (best's) by more than the tie margin:
    `margin` (TIE_MARGIN), or two standard errors of the ratio of their variances, whichever is
    larger."""
    def rse(x):
        return x.se / x.variance if x.variance > 0 and math.isfinite(x.se) else 0.0
    return c.score > best.score * (1 + max(margin, 2 * math.hypot(rse(c), rse(best))))


def prefer_in_tie(c, best, in_force: bool) -> bool:
    """Whether candidate c takes the place of `best`, their scores tied: when its work is less by
    more than the tie margin, or, neither's work less by that much, when it is the choice in force.
    (A variance measured over a few dozen draws can be uncertain to a factor of two, the work
    never is: among candidates the data do not tell apart by score, the one of less work.)"""
    if c.work * (1 + TIE_MARGIN) < best.work:
        return True
    if best.work * (1 + TIE_MARGIN) < c.work:
        return False
    return in_force


ROUNDING_ULPS = 64       # draws that agree within this many units in the last place of their largest entry
                         # differ by rounding only (an exact estimator: the same gradient at every draw, up
                         # to the order of its sums): no variance


def moments(g):
    """(trace of the covariance of the rows of g, its standard error); (0, 0) where the rows agree
    up to rounding (ROUNDING_ULPS of their largest entry, in their dtype), so that two exact
    estimators tie at zero whatever the rounding of either."""
    n = g.shape[0]
    d = ((g - g.mean(0)) ** 2).sum(1)             # each draw's squared deviation; their sum / (n - 1) = trace
    var = float(d.sum() / (n - 1))
    se = float(d.std(ddof=1) * math.sqrt(n) / (n - 1))
    if not math.isfinite(var):
        return math.inf, math.inf
    eps = np.finfo(g.dtype).eps if np.issubdtype(g.dtype, np.floating) else np.finfo(np.float64).eps
    scale = float(np.abs(g).max()) if g.size else 0.0
    if var <= g.shape[1] * (ROUNDING_ULPS * eps * scale) ** 2:
        return 0.0, 0.0
    return var, se


def rows_of(model, an, options, assign: dict) -> int:
    """Rows per data row of the program under `assign` (node -> (estimator, options)), from its
    row plan (the array lowering's; `an`: the model's analysis): nothing lowered or compiled."""
    from ..lowering import ArrayLowering
    from ..lowering.grads import alternative_paths
    from ..lowering.rows import plan_rows
    choices = select(model, an, dict(assign), "rules", options.samples, options.baseline, options.objective)
    paths = alternative_paths(model, an, choices, options.target == "cpu")
    plan = plan_rows(model, an, choices, options.samples, options.objective, ArrayLowering.merge_rows,
                     ArrayLowering.one_layout, paths)
    return options.samples * plan.S


def start_from(prog, start):
    """Give `prog` the model parameters and estimator state of `start` (a Program, or a
    runtime.choice.Snapshot of one), by name."""
    if start is None:
        return
    start.pull()
    prog.pull()
    for k in prog.model_param_names():
        if k in start.params:
            prog.params[k][...] = start.params[k]
    old = {n: (off, size) for n, off, size, _ in start.layout.state}
    for n, off, size, _ in prog.layout.state:
        if n in old and old[n][1] == size:
            prog.state[off: off + size] = start.state[old[n][0]: old[n][0] + size]
    prog.push()
