"""The measured choice (policy "measured"; "autotune" its former name): an unbiased estimator per
stochastic node, chosen by the gradient variance x work measured on the pilot data, in one compiled
program for the candidates that can share a drawn row and one program per estimator for the others.

The program. Per node, its candidates are the unbiased estimators that apply to it under the
program's objective and can share one drawn row (`candidates.why_not_member`: score, DisARM, mvd,
...; an estimator that declares itself not worth measuring, `not_measured`, is left out with its
reason). They are compiled side by side as the node's `candidates` estimator
(ppl/estimators/candidates.py): the graph below runs once on every candidate's rows, from the
same draws, and which candidate's gradient reaches the parameters is a number in the program's
state. So the sweep over the nodes and their candidates compiles one program, whatever their
number. A node that is continuous, under objective "iwae", whose rule-table estimator is not
measured, or that has one candidate keeps the rule table's choice and measures nothing. A node in
a scan's body is measured among its rule-table choice and the estimators of one extra row for all
the steps (stochastic derivatives, in a program of their own): the others take their rows at
every step.

Programs of their own. The unbiased estimators that apply but cannot share the drawn row
(enumeration's weighted configurations, stochastic derivatives' alternative row, ARMS's coupled
draws, `own_draws`; a member whose drawn row turned out to be its own) are measured after the
sweep, one program per estimator at every node where it is such a candidate, the other nodes at
the sweep's choice (ppl/compiler/alone.py): the same batch, look-ahead parameters, warmed state
and steps of the seed, the sweep's choice measured again alike. Their rows cost unlike the
measured program's, so each is timed against the sweep's choice's program: its work is that
choice's rows times the ratio of their times per estimate. One of them is chosen where its score,
raised by the square root of its extra work, is below the choice's by SOLO_MARGIN (25%) or two
standard errors. Estimators whose control variate is trained with the model (REBAR, RELAX,
RODEO, double CV) are not measured: their variance at one point of training says little.
Where the run's length is known (`Program.choose(steps=N)`: fit, `ppl train`), a program of its
own is measured only while the draws and timing of those measured cost at most SOLO_SHARE (10%)
of the run's steps, counted in steps of the sweep's choice, the cheapest first
(`Alone.budget_solos`); one that is the choice in force always is. Their compile is not counted:
the disk cache may hold it, and a first run chooses as a later one does. One left out is never
compiled; the table says why.

Measurements, in the measured program at the initial parameters:
- look-ahead (the first measurement only): `LOOKAHEAD` steps of Adam from the initial parameters
  on the batch, on the measured program's copy of them, so that the candidates are compared at a
  point of training rather than at a random initialisation, where the learning signals are flat
  and the ranking can differ (`_lookahead`); the chosen program starts from the initial ones.
- warm-up: `WARMUP` steps with every node at the rule table's choice. Every candidate's state
  (the score function's running baseline) runs at every step whatever the choice, so each is
  measured as training runs it, warmed, never reset; its state is carried into the program of
  the choice by name.
- a member whose drawn row is not the values' (a user's estimator with draws of its own) is told
  apart (the step marks such rows) and measured in a program of its own instead.
- variance: the trace of the covariance of the model-parameter gradient over `DRAWS` estimates
  at steps s of the seed; at each draw every candidate of the node is run from the same state and
  the same (seed, step): common random numbers, the same on every run. Its standard error comes
  from the spread of the draws' squared deviations.
- rows: the rows the program of that choice evaluates per data row (K samples x S configurations:
  2 for an antithetic pair, 1 + width for mvd's branches), read from its row plan without
  compiling it: the cost model, counted, so the sweep's choice is the same on every run.

Decision per node (`decide`): score = variance x rows, the variance of an average of estimates
that evaluate the same number of rows (variance per unit of work; for a program of its own,
variance x work). Candidates whose score is within the tie margin of the least -- `TIE_MARGIN`
(10%) or two standard errors of the ratio, whichever is larger -- are tied: the data do not tell
them apart; among them the rule table's choice stays if it is tied, else the fewest rows, then
the name.

Nodes are chosen one at a time in topological order (the data side first), each with the other
nodes at their current choice (the rule table's until chosen): one sweep of coordinate descent,
in the one program (a choice is a number: nothing compiles). Since the variance measured is the
whole model-parameter gradient's and the rows the whole step's, each node's choice accounts for
what the nodes before it chose.

`Program.autotune_table` holds one row per (node, candidate) -- excluded ones with the reason --
and `Program.explain()` prints it.
"""
from __future__ import annotations

import time

import numpy as np

from ..analysis import graph as G
from ..errors import ModelError
from ..estimators import REGISTRY
from ..language.scan import segment_steps
from .alone import Alone
from .measure import (DRAWS, LOOKAHEAD, LOOKAHEAD_LR, MAX_ROWS, ROUND, SOLO_DRAWS, SOLO_MARGIN,  # noqa: F401
                      TIE_MARGIN, TIME_ROWS, WARMUP, Candidate, clear, decide, moments, start_from)
from .selection import select
from ..runtime.choice import Snapshot

RULE = (f"variance = trace of the model-parameter gradient's covariance over {ROUND}-{DRAWS} draws (rounds of "
        f"{ROUND} until one candidate is clearly least) on at most {MAX_ROWS} data rows, after {WARMUP} warm-up "
        f"steps (state warmed, not reset), every candidate that shares the drawn row from the same draws in one "
        f"program, the others each in a program of its own (the same batch, parameters, state and steps); "
        f"score = variance x work, work = rows per data row (counted) in the one program, and for a program of "
        f"its own the measured choice's rows times the ratio of their times per estimate (timed); scores within "
        f"{TIE_MARGIN:.0%} (between programs {SOLO_MARGIN:.0%}) or 2 SE of the least are tied: the choice in force "
        f"(at first the rule table's) stays if tied, else the least work")


def not_measured(name: str, info) -> str | None:
    """Why the measured choice leaves estimator `name` out for a node (its declared
    `not_measured`), else None."""
    return REGISTRY[name].not_measured(info)


def _members(info, rule: str):
    """(the node's candidates in the measured program, in order: the rule table's choice first;
    those measured in a program of their own (`solo`); [(estimator, why not)] of the unbiased
    estimators that apply but are measured in neither)."""
    from ..estimators.candidates import why_not_member
    members, solo, out = [], [], []
    for name, est in sorted(REGISTRY.items(), key=lambda kv: (kv[0] != rule, kv[0])):
        if name == "candidates" or not est.unbiased or est.applies(info) is not None:
            continue
        why = not_measured(name, info)
        if why is None:
            own = why_not_member(est, info) or ("its drawn row is its own coupled draw" if est.own_draws else None)
            if own is None:
                members.append(name)
                continue
            if est.param_prefixes:
                why = ("its control variate's parameters are trained with the model: its variance at one point of "
                       "training says little of it")
            else:
                solo.append(name)
                continue
        out.append((name, why))
    return members, solo, out


def _why_not_measured(node, info, rule: str, members: list, solo: list, objective: str) -> str | None:
    """Why the node keeps the rule table's choice without measuring, else None."""
    if objective != "elbo":
        return f"objective {objective!r}: the measured choice compares ELBO estimators"
    why = REGISTRY["candidates"].applies(info)
    if why is not None:
        return why
    if rule not in members and rule not in solo:
        why = not_measured(rule, info) or "its control variate is trained with the model"
        return f"the rule table's '{rule}' is not measured ({why})"
    if not members:
        return "no candidate shares the drawn row: nothing to measure it against in one program"
    if len(members) + len(solo) < 2:
        return "one candidate applies: nothing to measure"
    return None


def _lookahead(prog, data, batch, seed, steps) -> None:
    """`steps` Adam steps (LOOKAHEAD_LR) of the measured program's model parameters on this batch,
    at the choices in force: the first measurement is taken there, not at the initial parameters.
    A random initialisation is no point of training: its learning signals are flat, and the
    candidates' variances there can rank unlike a few steps later (BENCHMARKS.md, "The measured
    choice": the score function against DisARM on the 784-200 SBN)."""
    from ..runtime.diagnostics import adam_steps
    if steps <= 0:
        return
    own, model = np.zeros(prog.theta.shape, dtype=bool), set(prog.model_param_names())
    for name, off, shape, _ in prog.layout.params:
        own[off: off + int(np.prod(shape))] = name in model
    adam_steps(prog, data, own, LOOKAHEAD_LR, [(seed, (1 << 40) + t) for t in range(1, steps + 1)], batch)


def _first_rows(data, batch, n: int):
    """A copy of the batch (a dict of arrays, an array, or None with `batch` rows for a model without
    inputs) cut to its first n data rows (programs of their own are measured later, perhaps on a
    thread, while the caller may reuse its arrays)."""
    if data is None:
        return None, min(int(batch), n)
    if isinstance(data, dict):
        return {k: np.array(np.asarray(v)[:n]) for k, v in data.items()}, batch
    return np.array(np.asarray(data)[:n]), batch


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
    from ..estimators.score import in_loop
    """(rule table's choices, chosen {node: (estimator, options)}, {node: its candidates in the
    measured program}, {node: its candidates measured in programs of their own}, table of the
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
    table, measured, solos = [], {}, {}           # measured: node -> its candidates' names
    for node, (ch, info) in base.items():
        if node.name in fixed:
            continue
        members, solo, out = _members(info, ch.estimator)
        if in_loop(info):   # in a scan's body: the rule's choice and the estimators of one row for all the steps
            out += [(m, "a node in a scan's body: its extra rows would be taken at every step")
                    for m in (*members, *solo) if m != ch.estimator and not REGISTRY[m].alternative_row]
            members = [m for m in members if m == ch.estimator]
            solo = [m for m in solo if REGISTRY[m].alternative_row]
            lp = next(lp for lp in model.loops if lp.name == node.attrs["loop"])
            if options.target == "cpu" and segment_steps(lp, np.dtype(options.dtype).itemsize) is not None:
                out += [(m, "the scan is checkpointed: a path carried across its steps is not run again by "
                            "segments") for m in solo]
                solo = []
        why = _why_not_measured(node, info, ch.estimator, members, solo, objective)
        if why is not None or options.target != "cpu":
            ch.reason = f"{ch.reason} (not measured: {why or 'the measured choice runs on the CPU target'})"
            continue
        measured[node.name], solos[node.name] = members, solo
        table += [Candidate(node.name, name, verdict=f"excluded: {w}") for name, w in out]
    return base, chosen, measured, solos, table


def measured_nodes(model, options) -> list:
    """The nodes the measured choice measures under `options` (nothing compiled)."""
    return list(_plan(model, options)[2])


def autotune(model, compile_program, options, start=None):
    """The program with the estimator per node the module's rule chooses under `options` (a
    CompileOptions, its pilot data set); `compile_program(model, options, ahead=True)` is the
    compiler's entry point (passed in: the compiler calls this module, not the reverse). `start`: a program whose
    model parameters and estimator state the measurement starts from (by name). The program keeps
    its `Measurement` (`measurement`), which measures again as training moves (`again`). The
    candidates measured in programs of their own are still to measure (`Measurement.pending`):
    `settle` measures them and gives the program of the final choice."""
    pilot = options.pilot
    if pilot is None:
        raise ModelError("the measured choice needs pilot data: compile(..., pilot={'x': batch}) (for a model "
                         "without inputs, pilot=N rows), or a first batch")
    data, batch = (None, int(pilot)) if isinstance(pilot, (int, np.integer)) else (pilot, None)
    base, chosen, measured, solos, table = _plan(model, options)
    if not measured:
        prog = _rules_program(model, compile_program, options, base, chosen, start)
        prog.autotune_table, prog.autotune_rule = [c.as_dict() for c in table], RULE
        return prog
    try:
        m = Measurement(model, options, compile_program, base, chosen, measured, solos, table)
        start_from(m.prog, start)
        t0 = time.perf_counter()
        picks = m.sweep(data, batch, options.seed, 0, {name: m.rules[name] for name in measured},
                        lookahead=LOOKAHEAD)
        m.plan_solos(picks)
    except Exception as e:   # noqa: BLE001 - a candidate refused in its place (mvd above an enumerated node),
        # or a user's estimator whose code fails beside the others: the rule table, the reason said
        return _rules_program(model, compile_program, options, base, chosen, start,
                              {name: f" (not measured: the candidates' program was refused: {e})" for name in measured})
    final = m.program(picks)
    m.seconds = time.perf_counter() - t0          # what measuring again costs, a compile included
    return final


def settle(prog):
    """The program of the final choice of `prog` (a program of a measured choice whose candidates of
    programs of their own are measured now, if they were not): `prog` itself, labelled with the
    whole table, or the program of a candidate measured in a program of its own that won (its
    parameters and state `prog`'s)."""
    m = prog.measurement
    if m is None or not m.pending:
        return prog
    m.measure_solos()
    return m.settled(prog)


def _rules_program(model, compile_program, options, base, chosen, start, notes=None):
    """The program of the rule table's choices (`chosen`) from `start`'s parameters and state, each
    node's reason the rule table's (`base`), with its note from `notes` where it has one."""
    prog = compile_program(model, options.replace(estimators=dict(chosen), policy="rules", pilot=None))
    start_from(prog, start)
    reasons = {n.name: ch.reason for n, (ch, _) in base.items()}
    for node, (ch, _) in prog.choices.items():
        ch.reason = reasons[node.name] + (notes or {}).get(node.name, "")
    return prog


class Measurement(Alone):
    """The measured program of a model (every measured node's candidates side by side) and what it
    measures: `sweep` chooses on a batch at the parameters and state it is given, `plan_solos` /
    `measure_solos` / `settled` the candidates of programs of their own, `program` compiles the
    program of a choice, `again` does all of it for a program in training."""

    def __init__(self, model, options, compile_program, base, chosen, measured, solos, excluded):
        from ..estimators.candidates import chosen_state
        self.model, self.options, self.compile_program = model, options, compile_program
        self.an = G.analyse(model)
        self.base, self.chosen, self.measured, self.excluded = base, dict(chosen), measured, excluded
        self.solos = {name: list(s) for name, s in solos.items()}
        self.rules = {n.name: ch.estimator for n, (ch, _) in base.items()}
        union = dict(chosen)
        for name, members in measured.items():
            union[name] = ("candidates", {"among": tuple((m, self.opts_of(m)) for m in members), "chosen": 0})
        self.prog = compile_program(model, options.replace(estimators=union, policy="rules", pilot=None,
                                                           lowering="arrays"))
        self.slots = {name: _state_offset(self.prog, chosen_state(name)) for name in measured}
        self.table = []
        self.seconds = 0.0   # wall time of the last measurement: sweep, compiles, programs of their own
        self.pending = []    # the Solo programs still to measure
        self.picks = {}      # the measured program's choice of the last sweep
        self.defaults = {}   # the choice in force when it was measured (ties keep it)
        self.reference = None   # `picks` measured as the programs of their own are (measure_solos)
        self._at = None         # where the last sweep measured: (data, batch, seed, first draw's step, Snapshot)
        self._whole = None      # (data, batch): the last sweep's batch whole (up to TIME_ROWS rows)
        self._apart = {}        # node -> its members whose drawn row is their own (measured alone)
        self._solo_progs = {}   # a choice's key -> its compiled program, not adopted (a Solo's)

    def opts_of(self, name):
        baseline = self.options.baseline
        return {"baseline": baseline} if name == "score" and baseline is not None else {}

    def _member_default(self, name, now):
        """The member in force at node `name` while measuring, for its choice `now` (a candidate of a
        program of its own: the rule table's member, else the score function, else the first)."""
        ms = self.measured[name]
        if now in ms:
            return now
        return next((e for e in (self.rules[name], "score") if e in ms), ms[0])

    def sweep(self, data, batch, seed, step0, defaults: dict, lookahead: int = 0) -> dict:
        """{node: estimator} chosen in the measured program on this batch: WARMUP steps at the choices
        `defaults` (every candidate's state warmed; a node whose choice is measured in a program of
        its own at a member of the measured program), then per node in topological order each
        candidate's variance over DRAWS draws (steps step0 + WARMUP + s of `seed`) with the other
        nodes at their choice so far; `decide` keeps `defaults[node]` where it is tied. The table of
        the sweep: `self.table`."""
        prog, names, table = self.prog, self.prog.model_param_names(), list(self.excluded)
        self._whole = _first_rows(data, batch, TIME_ROWS)   # programs of their own are timed on it
        data, batch = _first_rows(data, batch, MAX_ROWS)      # the variance per row ranks the candidates
        members = {name: list(ms) for name, ms in self.measured.items()}
        self.defaults = dict(defaults)
        picks = {name: self._member_default(name, defaults[name]) for name in members}
        prog.pull()
        for name, ms in members.items():
            prog.state[self.slots[name]] = ms.index(picks[name])
        prog.push()
        theta = prog.theta.copy()
        _lookahead(prog, data, batch, seed, lookahead)
        for t in range(WARMUP):
            prog.grad(data, seed=seed, step=step0 + lookahead + t, batch=batch)
        prog.pull()
        self._at = (data, batch, seed, step0 + lookahead + WARMUP, Snapshot(prog))
        apart = {name: _drawn_apart(prog, data, batch, name, ms) for name, ms in members.items()}
        self._apart = apart
        for name, ms in members.items():          # one sweep of coordinate descent, in topological order
            cands = []
            for k, est in enumerate(ms):
                if est in apart[name]:   # its drawn row is its own (coupled draws): measured alone
                    continue
                cands.append((k, Candidate(name, est, rows=self._rows({**picks, name: est}))))
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
                        c.variance, c.se = moments(np.array(grads[k]))
                        c.draws = len(grads[k])
                    if clear([c for _, c in cands]):
                        break
            pick = decide([c for _, c in cands], picks[name])
            prog.pull()
            prog.state[self.slots[name]] = next(k for k, c in cands if c is pick)
            prog.push()
            picks[name] = pick.estimator
            table.extend(sorted((c for _, c in cands), key=lambda c: (c.score, c.estimator)))
        prog.pull()
        prog.theta[:] = theta                     # the parameters it was given (the look-ahead was a copy's)
        prog.push()
        self.table, self.picks, self.reference = self._sorted(table), dict(picks), None
        return picks

    def _sorted(self, table):
        order = {n.name: i for i, n in enumerate(self.base)}
        return sorted(table, key=lambda c: (order[c.node], not c.measured, c.score if c.measured else 0.0,
                                            c.estimator))

    # ----- the program of a choice
    def program(self, picks: dict):
        """The program of the choice `picks`, from the measured program's parameters and (warmed)
        state, with the table and the reasons; it keeps this measurement."""
        final = self._started(self._take_program(picks))
        start_from(final, self.prog)             # the parameters, and the warmed state by name
        self.label(final)
        final.measurement = self
        return final

    def carry(self, prog) -> None:
        """Give `prog` (a program of this measurement's) the measured program's parameters and state."""
        start_from(prog, self.prog)

    def label(self, prog) -> None:
        """The last measurement's table and reasons on `prog`."""
        for node, (ch, _) in prog.choices.items():
            if node.name in self.measured:
                pick = next((c for c in self.table if c.node == node.name and c.chosen), None)
                ch.reason = (f"measured: {pick.verdict} (see the measured table)" if pick is not None else
                             "measured (see the measured table)")
            else:
                ch.reason = next(c.reason for n, (c, _) in self.base.items() if n.name == node.name)
        waiting = [Candidate(n, s.estimator, verdict="in a program of its own: measured by the next call")
                   for s in self.pending if s.waiting for n in s.nodes]
        prog.autotune_table = [c.as_dict() for c in self._sorted(self.table + waiting)]
        prog.autotune_rule = RULE

    def again(self, prog, data, batch, seed, step, steps=None):
        """Measure again at `prog`'s parameters and state (a program of this measurement in
        training) on this batch, the candidates of programs of their own too (those the run's
        `steps` left can repay, `budget_solos`, where it is given): the program of a new choice
        where a node's candidate changed (compiled), else None (`prog`'s table is the new
        measurement's)."""
        t0 = time.perf_counter()
        start_from(self.prog, prog)
        now = {n.name: ch.estimator for n, (ch, _) in prog.choices.items() if n.name in self.measured}
        picks = self.sweep(data, batch, seed, step, now)
        self.plan_solos(picks)
        if steps is not None:
            self.budget_solos(prog, steps)
        self.measure_solos()
        new = self.settled(prog)
        self.seconds = time.perf_counter() - t0
        return None if new is prog else new
