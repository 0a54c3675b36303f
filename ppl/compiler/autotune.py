"""The measured choice (policy "autotune"): an unbiased estimator per stochastic node, chosen by
the gradient variance measured on the pilot data in ONE compiled program, the same choice on
every run with the same seed.

The program. Per node, its candidates are the unbiased estimators that apply to it under the
program's objective and can share one drawn row (`candidates.why_not_member`: score, DisARM, mvd,
...; an estimator that declares itself not worth measuring, `not_measured`, is left out with its
reason). They are compiled side by side as the node's `candidates` estimator
(ppl/estimators/candidates.py): the graph below runs once on every candidate's rows, from the
same draws, and which candidate's gradient reaches the parameters is a number in the program's
state. So measuring compiles one program, whatever the number of nodes and candidates, and
then the program of the choice: two compiles in all. A node whose rule-table estimator cannot
share a drawn row (pathwise on a continuous node, REBAR, enumeration, a node in a scan's body),
or that has one candidate, keeps the rule table's choice and measures nothing; so does every node
under objective "iwae".

Measurements, in the measured program at the initial parameters:
- look-ahead (the first measurement only): `LOOKAHEAD` steps of Adam from the initial parameters
  on the batch, on the measured program's copy of them, so that the candidates are compared at a
  point of training rather than at a random initialisation, where the learning signals are flat
  and the ranking can differ (`_lookahead`); the chosen program starts from the initial ones.
- warm-up: `WARMUP` steps with every node at the rule table's choice. Every candidate's state
  (the score function's running baseline) runs at every step whatever the choice, so each is
  measured as training runs it, warmed, never reset; its state is carried into the program of
  the choice by name.
- a candidate whose drawn row is not the values' (its own coupled draws: ARMS) is told apart
  (the step marks such rows) and left out, with the reason.
- variance: the trace of the covariance of the model-parameter gradient over `DRAWS` estimates
  at steps s of the seed; at each draw every candidate of the node is run from the same state and
  the same (seed, step): common random numbers, the same on every run. Its standard error comes
  from the spread of the draws' squared deviations.
- rows: the rows the program of that choice evaluates per data row (K samples x S configurations:
  2 for an antithetic pair, 1 + width for mvd's branches), read from its row plan without
  compiling it: the cost model, counted, so the choice is the same on every run.

Decision per node (`decide`): score = variance x rows, the variance of an average of estimates
that evaluate the same number of rows (variance per unit of work). Candidates whose score is
within the tie margin of the least -- `TIE_MARGIN` (10%) or two standard errors of the ratio,
whichever is larger -- are tied: the data do not tell them apart; among them the rule table's
choice stays if it is tied, else the fewest rows, then the name.

Nodes are chosen one at a time in topological order (the data side first), each with the other
nodes at their current choice (the rule table's until chosen): one sweep of coordinate descent,
in the one program (a choice is a number: nothing compiles). Since the variance measured is the
whole model-parameter gradient's and the rows the whole step's, each node's choice accounts for
what the nodes before it chose.

`Program.autotune_table` holds one row per (node, candidate) -- excluded ones with the reason --
and `Program.explain()` prints it.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..analysis import graph as G
from ..errors import ModelError
from ..estimators import REGISTRY
from .selection import select

DRAWS = 32               # gradient estimates per candidate for its variance, at most
ROUND = 8                # ... drawn in rounds of this many; the sweep of a node stops when one is clearly least
WARMUP = 10              # steps before the draws: every candidate's state warmed as in training
LOOKAHEAD = 10           # the first measurement's: Adam steps (LOOKAHEAD_LR) from the initial parameters first
LOOKAHEAD_LR = 1e-3
MAX_ROWS = 32            # data rows of the batch it measures on, at most (the first ones)
TIE_MARGIN = 0.10        # scores within 10% (or two standard errors) of the least are tied
RULE = (f"variance = trace of the model-parameter gradient's covariance over {ROUND}-{DRAWS} draws (rounds of "
        f"{ROUND} until one candidate is clearly least) on at most {MAX_ROWS} data rows, after {WARMUP} warm-up "
        f"steps (state warmed, not reset), every candidate from the same draws "
        f"in one program; score = variance x rows per data row; scores within {TIE_MARGIN:.0%} (or 2 SE) of the "
        f"least are tied: the rule table's choice stays if tied, else the fewest rows")


def not_measured(name: str, info) -> str | None:
    """Why the measured choice leaves estimator `name` out for a node (its declared
    `not_measured`), else None."""
    return REGISTRY[name].not_measured(info)


class Candidate:
    """One estimator measured for one node (a row of `Program.autotune_table`)."""

    def __init__(self, node, estimator, variance=math.nan, se=math.nan, rows=0, verdict=""):
        self.node, self.estimator = node, estimator
        self.variance, self.se, self.rows, self.verdict = variance, se, rows, verdict
        self.draws = 0               # gradient estimates behind the variance
        self.chosen = False

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
                "rows": self.rows, "score": self.score if self.measured else math.nan, "draws": self.draws,
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
        if not _apart(c, best):
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
    return math.isfinite(best.score) and all(c is best or _apart(c, best) for c in cands)


def _apart(c, best) -> bool:
    """Whether candidate c's score is above the least one's (best's) by more than the tie margin:
    TIE_MARGIN, or two standard errors of the ratio of their variances, whichever is larger."""
    def rse(x):
        return x.se / x.variance if x.variance > 0 and math.isfinite(x.se) else 0.0
    return c.score > best.score * (1 + max(TIE_MARGIN, 2 * math.hypot(rse(c), rse(best))))


def _moments(g):
    """(trace of the covariance of the rows of g, its standard error)."""
    n = g.shape[0]
    d = ((g - g.mean(0)) ** 2).sum(1)             # each draw's squared deviation; their sum / (n - 1) = trace
    var = float(d.sum() / (n - 1))
    se = float(d.std(ddof=1) * math.sqrt(n) / (n - 1))
    return (var, se) if math.isfinite(var) else (math.inf, math.inf)


def _members(info, rule: str):
    """(the node's candidates, in order: the rule table's choice first; [(estimator, why not)] of
    the unbiased estimators that apply but are not candidates)."""
    from ..estimators.candidates import why_not_member
    members, out = [], []
    for name, est in sorted(REGISTRY.items(), key=lambda kv: (kv[0] != rule, kv[0])):
        if name == "candidates" or not est.unbiased or est.applies(info) is not None:
            continue
        why = not_measured(name, info) or why_not_member(est, info)
        if why is None:
            members.append(name)
        else:
            out.append((name, why))
    return members, out


def _why_not_measured(node, info, rule: str, members: list, objective: str) -> str | None:
    """Why the node keeps the rule table's choice without measuring, else None."""
    from ..estimators.candidates import why_not_member
    from ..estimators.score import in_loop
    if objective != "elbo":
        return f"objective {objective!r}: the measured choice compares ELBO estimators"
    if in_loop(info):
        return "a node in a scan's body: its candidates' rows are taken at every step"
    why = REGISTRY["candidates"].applies(info)
    if why is not None:
        return why
    if rule not in members:
        why = not_measured(rule, info) or why_not_member(REGISTRY[rule], info)
        return f"the rule table's '{rule}' cannot share the drawn row ({why})"
    if len(members) < 2:
        return "one candidate applies: nothing to measure"
    return None


def rows_of(model, an, options, assign: dict) -> int:
    """Rows per data row of the program under `assign` (node -> (estimator, options)), from its
    row plan (the array lowering's; `an`: the model's analysis): nothing lowered or compiled."""
    from ..lowering import ArrayLowering
    from ..lowering.rows import plan_rows
    choices = select(model, an, dict(assign), "rules", options.samples, options.baseline, options.objective)
    plan = plan_rows(model, an, choices, options.samples, options.objective, ArrayLowering.merge_rows,
                     ArrayLowering.one_layout)
    return options.samples * plan.S


def _lookahead(prog, data, batch, seed, steps) -> None:
    """`steps` Adam steps (LOOKAHEAD_LR) of the measured program's model parameters on this batch,
    at the choices in force: the first measurement is taken there, not at the initial parameters.
    A random initialisation is no point of training: its learning signals are flat, and the
    candidates' variances there can rank unlike a few steps later (on the 784-200 SBN the score
    function's variance x rows is 0.7x DisARM's at initialisation, 8x after 10 steps of Adam)."""
    from ..runtime.diagnostics import adam_steps
    if steps <= 0:
        return
    own, model = np.zeros(prog.theta.shape, dtype=bool), set(prog.model_param_names())
    for name, off, shape, _ in prog.layout.params:
        own[off: off + int(np.prod(shape))] = name in model
    adam_steps(prog, data, own, LOOKAHEAD_LR, [(seed, (1 << 40) + t) for t in range(1, steps + 1)], batch)


def _first_rows(data, batch):
    """The batch cut to its first MAX_ROWS data rows (the variance per row ranks the candidates)."""
    if data is None:
        return None, min(int(batch), MAX_ROWS)
    if isinstance(data, dict):
        return {k: np.asarray(v)[:MAX_ROWS] for k, v in data.items()}, batch
    return np.asarray(data)[:MAX_ROWS], batch


def _state_offset(prog, name: str) -> int:
    return next(off for n, off, _, _ in prog.layout.state if n == name)


def _drawn_apart(prog, data, batch, node: str, members: list) -> set:
    """The members whose drawn rows were not the node's values at the last step (their own
    coupled draws): each marked them in its buffer (candidates.differs_buffer)."""
    from ..estimators.candidates import differs_buffer
    _, ws1 = prog.workspace(prog.args(data, batch)[6])
    names = [n for n, _ in prog.layout.ws1]
    out = set()
    for k, name in enumerate(members):
        tag = f"{differs_buffer(k)}_{node}"
        if tag in names and np.any(ws1[names.index(tag)] != 0):
            out.add(name)
    return out


def _plan(model, options):
    """(rule table's choices, chosen {node: (estimator, options)}, {node: its candidates}, table of the
    excluded) under `options`: which nodes the measured choice measures, among which estimators."""
    estimators, samples, baseline, objective = options.estimators, options.samples, options.baseline, options.objective
    an = G.analyse(model)
    base = select(model, an, estimators, "rules", int(samples), baseline, objective)
    if isinstance(estimators, dict):
        fixed = set(estimators)
    elif estimators == "auto":
        fixed = set()
    else:                                         # one estimator for every node: nothing to measure
        fixed = {n.name for n in base}
    chosen = {n.name: (ch.estimator, dict(ch.options) if n.name in fixed else {}) for n, (ch, _) in base.items()}
    table, measured = [], {}                      # measured: node -> its candidates' names
    for node, (ch, info) in base.items():
        if node.name in fixed:
            continue
        members, out = _members(info, ch.estimator)
        why = _why_not_measured(node, info, ch.estimator, members, objective)
        if why is not None or options.target != "cpu":
            ch.reason = f"{ch.reason} (not measured: {why or 'the measured choice runs on the CPU target'})"
            continue
        measured[node.name] = members
        table += [Candidate(node.name, name, verdict=f"excluded: {w}") for name, w in out]
    return base, chosen, measured, table


def measured_nodes(model, options) -> list:
    """The nodes the measured choice measures under `options` (nothing compiled)."""
    return list(_plan(model, options)[2])


def _start_from(prog, start):
    """Give `prog` the model parameters and estimator state of `start` (a Program), by name."""
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


def autotune(model, compile_program, options, start=None):
    """The program with the estimator per node the module's rule chooses under `options` (a
    CompileOptions, its pilot data set); `compile_program(model, options)` is the compiler's entry
    point (passed in: the compiler calls this module, not the reverse). `start`: a program whose
    model parameters and estimator state the measurement starts from (by name). The program keeps
    its `Measurement` (`measurement`), which measures again as training moves (`again`)."""
    pilot = options.pilot
    if pilot is None:
        raise ModelError("the measured choice needs pilot data: compile(..., pilot={'x': batch}) (for a model "
                         "without inputs, pilot=N rows), or a first batch")
    data, batch = (None, int(pilot)) if isinstance(pilot, (int, np.integer)) else (pilot, None)
    base, chosen, measured, table = _plan(model, options)
    if not measured:
        prog = _rules_program(model, compile_program, options, base, chosen, start)
        prog.autotune_table, prog.autotune_rule = [c.as_dict() for c in table], RULE
        return prog
    try:
        m = Measurement(model, options, compile_program, base, chosen, measured, table)
        _start_from(m.prog, start)
        t0 = time.perf_counter()
        rules = {n.name: ch.estimator for n, (ch, _) in base.items()}
        picks = m.sweep(data, batch, options.seed, 0, {name: rules[name] for name in measured},
                        lookahead=LOOKAHEAD)
    except Exception as e:   # noqa: BLE001 - a candidate refused in its place (mvd above an enumerated node),
        # or a user's estimator whose code fails beside the others: the rule table, the reason said
        return _rules_program(model, compile_program, options, base, chosen, start,
                              {name: f" (not measured: the candidates' program was refused: {e})" for name in measured})
    final = m.program(picks)
    m.seconds = time.perf_counter() - t0          # what measuring again costs, a compile included
    return final


def _rules_program(model, compile_program, options, base, chosen, start, notes=None):
    """The program of the rule table's choices (`chosen`) from `start`'s parameters and state, each
    node's reason the rule table's (`base`), with its note from `notes` where it has one."""
    prog = compile_program(model, options.replace(estimators=dict(chosen), policy="rules", pilot=None))
    _start_from(prog, start)
    reasons = {n.name: ch.reason for n, (ch, _) in base.items()}
    for node, (ch, _) in prog.choices.items():
        ch.reason = reasons[node.name] + (notes or {}).get(node.name, "")
    return prog


class Measurement:
    """The measured program of a model (every measured node's candidates side by side) and what it
    measures: `sweep` chooses on a batch at the parameters and state it is given, `program` compiles
    the program of a choice, `again` does both for a program in training."""

    def __init__(self, model, options, compile_program, base, chosen, measured, excluded):
        from ..estimators.candidates import chosen_state
        self.model, self.options, self.compile_program = model, options, compile_program
        self.an = G.analyse(model)
        self.base, self.chosen, self.measured, self.excluded = base, dict(chosen), measured, excluded
        union = dict(chosen)
        for name, members in measured.items():
            union[name] = ("candidates", {"among": tuple((m, self.opts_of(m)) for m in members), "chosen": 0})
        self.prog = compile_program(model, options.replace(estimators=union, policy="rules", pilot=None,
                                                           lowering="arrays"))
        self.slots = {name: _state_offset(self.prog, chosen_state(name)) for name in measured}
        self.table = []
        self.seconds = 0.0   # wall time of the last sweep and its program's compile

    def opts_of(self, name):
        baseline = self.options.baseline
        return {"baseline": baseline} if name == "score" and baseline is not None else {}

    def sweep(self, data, batch, seed, step0, defaults: dict, lookahead: int = 0) -> dict:
        """{node: estimator} chosen on this batch: WARMUP steps at the choices `defaults` (every
        candidate's state warmed), then per node in topological order each candidate's variance over
        DRAWS draws (steps step0 + WARMUP + s of `seed`) with the other nodes at their choice so far;
        `decide` keeps `defaults[node]` where it is tied. The table of the sweep: `self.table`."""
        prog, names, table = self.prog, self.prog.model_param_names(), list(self.excluded)
        data, batch = _first_rows(data, batch)
        members = {name: list(ms) for name, ms in self.measured.items()}
        picks = dict(defaults)
        prog.pull()
        for name, ms in members.items():
            prog.state[self.slots[name]] = ms.index(defaults[name])
        prog.push()
        theta = prog.theta.copy()
        _lookahead(prog, data, batch, seed, lookahead)
        for t in range(WARMUP):
            prog.grad(data, seed=seed, step=step0 + lookahead + t, batch=batch)
        prog.pull()
        apart = {name: _drawn_apart(prog, data, batch, name, ms) for name, ms in members.items()}
        for name, ms in members.items():          # one sweep of coordinate descent, in topological order
            cands = []
            for k, est in enumerate(ms):
                if est in apart[name]:
                    table.append(Candidate(name, est, verdict="excluded: its drawn row is its own (its coupled "
                                                              "draws), not the other candidates'"))
                    continue
                trial = {**self.chosen, **{n: (e, self.opts_of(e)) for n, e in picks.items()},
                         name: (est, self.opts_of(est))}
                cands.append((k, Candidate(name, est, rows=rows_of(self.model, self.an, self.options, trial))))
            grads = {k: [] for k, _ in cands}
            for s in range(DRAWS):
                prog.pull()
                state = prog.state.copy()
                for k, _ in cands:
                    prog.state[:] = state
                    prog.state[self.slots[name]] = k
                    prog.push()
                    _, gr = prog.grad(data, seed=seed, step=step0 + lookahead + WARMUP + s, batch=batch)
                    grads[k].append(np.concatenate([gr[p].ravel() for p in names]).astype(np.float64))
                if (s + 1) % ROUND == 0 or s + 1 == DRAWS:   # a round's end: the moments so far
                    for k, c in cands:
                        c.variance, c.se = _moments(np.array(grads[k]))
                        c.draws = len(grads[k])
                    if clear([c for _, c in cands]):
                        break
            pick = decide([c for _, c in cands], defaults[name])
            prog.pull()
            prog.state[self.slots[name]] = next(k for k, c in cands if c is pick)
            prog.push()
            picks[name] = pick.estimator
            table.extend(sorted((c for _, c in cands), key=lambda c: (c.score, c.estimator)))
        prog.pull()
        prog.theta[:] = theta                     # the parameters it was given (the look-ahead was a copy's)
        prog.push()
        order = {n.name: i for i, n in enumerate(self.base)}
        table.sort(key=lambda c: (order[c.node], not c.measured, c.score if c.measured else 0.0, c.estimator))
        self.table = table
        return picks

    def program(self, picks: dict):
        """The program of the choice `picks`, from the measured program's parameters and (warmed)
        state, with the table and the reasons; it keeps this measurement."""
        chosen = {**self.chosen, **{n: (e, self.opts_of(e)) for n, e in picks.items()}}
        final = self.compile_program(self.model, self.options.replace(estimators=chosen, policy="rules", pilot=None))
        _start_from(final, self.prog)             # the parameters, and the warmed state by name
        self.label(final)
        final.measurement = self
        return final

    def carry(self, prog) -> None:
        """Give `prog` (a program of this measurement's) the measured program's parameters and state."""
        _start_from(prog, self.prog)

    def label(self, prog) -> None:
        """The last sweep's table and reasons on `prog`."""
        for node, (ch, _) in prog.choices.items():
            if node.name in self.measured:
                pick = next(c for c in self.table if c.node == node.name and c.chosen)
                ch.reason = f"measured: {pick.verdict} (see the measured table)"
            else:
                ch.reason = next(c.reason for n, (c, _) in self.base.items() if n.name == node.name)
        prog.autotune_table = [c.as_dict() for c in self.table]
        prog.autotune_rule = RULE

    def again(self, prog, data, batch, seed, step):
        """Measure again at `prog`'s parameters and state (a program of this measurement in
        training) on this batch: the program of a new choice where a node's candidate changed
        (compiled), else None (`prog`'s table is the new sweep's)."""
        t0 = time.perf_counter()
        _start_from(self.prog, prog)
        now = {n.name: ch.estimator for n, (ch, _) in prog.choices.items() if n.name in self.measured}
        picks = self.sweep(data, batch, seed, step, now)
        new = None
        if picks == now:
            self.label(prog)
        else:
            new = self.program(picks)
        self.seconds = time.perf_counter() - t0
        return new
