"""The candidates measured in a program of their own (a mixin of autotune.Measurement): the
unbiased estimators that apply to a node but cannot share the measured program's drawn row
(enumeration's weighted configurations, stochastic derivatives' alternative row, ARMS's coupled
draws), one program per estimator at every node where it is such a candidate, the other nodes at
the sweep's choice. Each is measured from the sweep's batch, look-ahead parameters, warmed state
and steps of the seed, as the sweep's choice is measured again beside it (`_measure_reference`),
and timed against that choice's program: its rows cost unlike the measured program's, so its
work is the choice's rows times the ratio of their times per estimate (measure.Candidate.work).
`final_choice` takes one where its score is clearly below the choice's (by SOLO_MARGIN, 25%,
or two standard errors: wider than within one program, for the draws are not common and the time
is measured apart from training's; raised first by the square root of its extra work, `_clearly_less`),
or tied with it and of clearly less work (`measure.prefer_in_tie`)."""
from __future__ import annotations

import copy
import math
import time

import numpy as np

from ..errors import ModelError
from . import ahead
from . import measure as M
from .measure import Candidate, apart, moments, prefer_in_tie, rows_of, start_from


def _step_args(prog, data, batch) -> tuple:
    """The arguments of `prog`'s raw step on this batch (seed 0, step 0, mode 1: the gradient)."""
    return prog.args(data, batch) + (np.uint64(0), np.int64(0), 1)


def _step_timer(prog, data, batch):
    """run(n): seconds for n calls of `prog`'s raw step on this batch (its state and gradient buffer
    kept as they were)."""
    state, grad = prog.state.copy(), prog.grad_buffer.copy()
    a = _step_args(prog, data, batch)
    entry = prog.entry
    entry(*a)   # compiled here: grad's first calls would run it interpreted (runtime/first_steps.py)
    prog.grad(data, batch=batch)    # warm
    prog.grad_buffer[:] = grad

    def run(n):
        t0 = time.perf_counter()
        for _ in range(n):
            entry(*a)
        dt = time.perf_counter() - t0
        prog.state[:] = state
        prog.grad_buffer[:] = grad
        return dt
    prog.state[:] = state
    return run


def _grad_time(prog, data, batch) -> float:
    """Seconds per gradient of `prog` on this batch as a run's first steps take it (`grad`: until
    its compile pays, the step interpreted over its compiled kernels, runtime/first_steps.py; not
    compiled here), about TIME_BLOCK seconds of calls (256 at most); its state and gradient buffer kept."""
    state, grad = prog.state.copy(), prog.grad_buffer.copy()
    try:
        prog.grad(data, batch=batch)   # its kernels compiled or loaded
        t0 = time.perf_counter()
        prog.grad(data, batch=batch)
        n = max(1, min(256, int(M.TIME_BLOCK / max(time.perf_counter() - t0, 1e-7))))
        t0 = time.perf_counter()
        for _ in range(n):
            prog.grad(data, batch=batch)
        return (time.perf_counter() - t0) / n
    finally:
        prog.state[:], prog.grad_buffer[:] = state, grad


def _clearly_less(c, best) -> bool:
    """Whether program of its own c's score is clearly below `best`'s: by SOLO_MARGIN (or two
    standard errors), its score first raised by the square root of its work over best's where it
    does more. A program whose steps cost k times more gets k times fewer of them in the same time,
    and Adam's progress is bounded by the steps as well as by their noise (BENCHMARKS.md, "The
    measured choice": ARMS on the 784-200 SBN, ahead on variance x work, behind at equal wall time).
    A variance lower by more than k^1.5 pays for k times the work; an exact estimate (variance 0)
    always does."""
    extra = max(1.0, c.work / best.work) if best.work > 0 else 1.0
    raised = Candidate(c.node, c.estimator, c.variance * math.sqrt(extra), c.se * math.sqrt(extra), c.rows)
    raised.timed = c.timed
    return apart(best, raised, M.SOLO_MARGIN)


class Solo:
    """Candidates measured in a program of their own: `estimator` at `nodes` (where it is a candidate
    that cannot share the measured program's drawn row), the other nodes at the measured choice
    `picks`; `cand` its figures once measured (None before, or its `error`, or why the run's length
    left it unmeasured: `skipped`)."""

    def __init__(self, estimator: str, nodes: tuple, picks: dict, prog, rows: int):
        self.estimator, self.nodes, self.picks, self.prog, self.rows = estimator, nodes, picks, prog, rows
        self.cand = None
        self.error = None
        self.skipped = None

    @property
    def waiting(self) -> bool:
        """Still to measure: not measured, failed or skipped."""
        return self.cand is None and self.error is None and self.skipped is None

    @property
    def choice(self) -> dict:
        return {**self.picks, **{n: self.estimator for n in self.nodes}}


class Alone:
    """autotune.Measurement's measurements of the candidates of programs of their own."""

    # ----- the candidates of programs of their own
    def plan_solos(self, picks: dict) -> None:
        """The programs of their own to measure after a sweep that chose `picks` (`pending`): one per
        estimator, at every node where it is such a candidate (or a member whose drawn row was its
        own), the other nodes at `picks`; each program made now (its step compiles when measured)."""
        nodes = {}
        for name in self.measured:
            for est in [*self.solos.get(name, ()), *sorted(self._apart.get(name, ()))]:
                nodes.setdefault(est, []).append(name)
        self.pending = []
        for est, ns in sorted(nodes.items()):
            choice = {**picks, **{n: est for n in ns}}
            try:
                solo = Solo(est, tuple(ns), dict(picks), self._compiled(choice), self._rows(choice))
            except ModelError as e:   # refused where it stands (stochastic derivatives above an enumerated node)
                solo = Solo(est, tuple(ns), dict(picks), None, 0)
                solo.error = str(e)
            self.pending.append(solo)

    def _assignment(self, choice: dict) -> dict:
        """{node: (estimator, options)} of the program of `choice` ({node: estimator} of the measured
        nodes; the others as chosen)."""
        return {**self.chosen, **{n: (e, self.opts_of(e)) for n, e in choice.items()}}

    def _rows(self, choice: dict) -> int:
        return rows_of(self.model, self.an, self.options, self._assignment(choice))

    def _key(self, choice: dict) -> tuple:
        return tuple(sorted(choice.items()))

    def _compiled(self, choice: dict):
        """The program of `choice`, kept to measure (made once per choice; its step compiles on its
        first call, a compile helper handed it only then: `_started`)."""
        key = self._key(choice)
        if key not in self._solo_progs:
            self._solo_progs[key] = self.compile_program(self.model, self.options.replace(
                estimators=self._assignment(choice), policy="rules", pilot=None), ahead=False)
        return self._solo_progs[key]

    @staticmethod
    def _started(prog):
        """`prog`, its step handed to a compile helper (ppl/compiler/ahead.py) where one applies: its
        step is about to run."""
        if prog.start_ahead is not None:
            prog.start_ahead()
        return prog

    def _take_program(self, choice: dict):
        """The program of `choice` to adopt: the one made to measure, if any (no longer kept), else a
        new one."""
        prog = self._compiled(choice)
        del self._solo_progs[self._key(choice)]
        return prog

    def measure_solos(self) -> None:
        """Measure the pending programs of their own where the last sweep measured (its batch,
        parameters and warmed state, the same steps of the seed): WARMUP steps, then the variance
        over SOLO_DRAWS draws, and the sweep's choice alike (`_measure_reference`); a program that fails to compile or
        run is left out with its error."""
        if self._at is None or not any(s.waiting for s in self.pending):
            return
        t0 = time.perf_counter()
        data, batch, seed, step, point = self._at
        if self.reference is None:
            self.reference = self._measure_reference()
        for solo in self.pending:
            if not solo.waiting:
                continue
            try:
                solo.cand = self._measure_one(self._started(solo.prog), data, batch, seed, step, point, solo.rows)
                solo.cand.estimator = solo.estimator
            except Exception as e:   # noqa: BLE001 - a candidate that fails is not chosen; the reason is said
                solo.error = f"{type(e).__name__}: {e}"
        self.seconds += time.perf_counter() - t0   # what measuring again costs (fit's budget)

    def budget_solos(self, prog, steps: int) -> None:
        """Leave unmeasured the pending programs of their own that a run of `steps` more steps of
        `prog` (the program of the sweep's choice) cannot repay: measuring one costs its
        WARMUP + SOLO_DRAWS estimates, each at least the choice's work times the ratio of their rows,
        and its TIME_ROUNDS timing rounds (the choice's measured again beside them: its draws and
        rounds once), counted in steps of `prog` (a round's seconds over `prog`'s time per gradient
        as the run's first steps take it, `_grad_time`: its step is not compiled for it); they may
        take SOLO_SHARE of the run's steps, the cheapest first. A candidate that is the choice in
        force at its nodes (the rule table's, until measured otherwise) is measured whatever it
        costs: the others are compared with it. Their compile is not counted (the disk cache may
        hold it, and the choice is the same on a first run and a later one). With TIME_ROUNDS = 0
        it is all counted, nothing timed."""
        waiting = [s for s in self.pending if s.waiting]
        if not waiting or self._at is None:
            return
        per_round = 0.0   # one timing round of one program, in steps of prog
        if M.TIME_ROUNDS > 0:
            try:
                per_round = M.TIME_ROUNDS * M.TIME_BLOCK / max(_grad_time(prog, *self._whole), 1e-9)
            except Exception:   # noqa: BLE001 - not timed: the draws counted alone (the run's first step says why)
                per_round = 0.0
        draws, rows = M.WARMUP + M.SOLO_DRAWS, max(self._rows(self.picks), 1)

        def cost(s):
            return draws * max(1.0, s.rows / rows) + per_round
        room = M.SOLO_SHARE * steps
        in_force = [s for s in waiting if all(self.defaults.get(n) == s.estimator for n in s.nodes)]
        spent = draws + per_round + sum(cost(s) for s in in_force)   # the reference, and those always measured
        for s in sorted((s for s in waiting if s not in in_force), key=lambda s: (cost(s), s.estimator)):
            if spent + cost(s) <= room:
                spent += cost(s)
                continue
            s.skipped = (f"not measured: measuring it costs about {cost(s):.0f} steps of the choice's work, and the "
                         f"run's {steps} steps leave {M.SOLO_SHARE:.0%} of theirs for it (a longer run, or "
                         f"compile(pilot=...), measures it)")

    def _measure_reference(self) -> Candidate:
        """The sweep's choice measured as the programs of their own are (the same warm-up, steps and
        SOLO_DRAWS draws; its figure in the sweep may rest on one round): in the measured program, its
        members in force at the choice; the program's parameters and state left as they were."""
        data, batch, seed, step, point = self._at
        prog = self.prog
        prog.pull()
        theta, kept = prog.theta.copy(), prog.state.copy()
        point = copy.copy(point)               # the snapshot of this program: its members in force at the choice
        point.state = point.state.copy()
        for name, ms in self.measured.items():
            point.state[self.slots[name]] = ms.index(self.picks[name])
        try:
            ref = self._measure_one(prog, data, batch, seed, step, point, self._rows(self.picks))
        finally:
            prog.theta[:], prog.state[:] = theta, kept
            prog.push()
        ref.node, ref.estimator = "", "the measured program's choice"
        return ref

    def _measure_one(self, prog, data, batch, seed, step, point, rows) -> Candidate:
        """`prog`'s figures from `point` (a Snapshot: its parameters and state by name): WARMUP steps,
        then the variance over SOLO_DRAWS draws at steps `step` .. of `seed`."""
        names = prog.model_param_names()
        start_from(prog, point)
        for t in range(M.WARMUP):   # its own state warmed, as the measured program's was
            prog.grad(data, seed=seed, step=step - M.WARMUP + t, batch=batch)
        c, grads = Candidate("", "", rows=rows), []
        for s in range(M.SOLO_DRAWS):
            _, gr = prog.grad(data, seed=seed, step=step + s, batch=batch)
            grads.append(np.concatenate([gr[p].ravel() for p in names]).astype(np.float64))
        c.variance, c.se = moments(np.array(grads))   # every draw: its time, measured next, moves its score
        c.draws = len(grads)
        return c

    def _time_solos(self, prog, solos) -> None:
        """Each measured program of its own's time per estimate against `prog`'s (the measured
        choice's program): the raw step on the measured batch whole, TIME_ROUNDS alternating rounds of
        about TIME_BLOCK seconds each, the median; its work is then the measured choice's rows
        times that ratio (Candidate.work). Rows are counted, so the measured program's choices are
        the same on every run; a time is not: a program of its own whose score is within the
        time's noise of the tie margin may be chosen on one run and not on another."""
        solos = [s for s in solos if s.cand is not None]
        if not solos or self.reference is None or self._at is None or M.TIME_ROUNDS <= 0:
            return
        t0 = time.perf_counter()
        data, batch = self._whole    # the batch training runs (its cost per row need not be the first rows')
        now = {n.name: ch.estimator for n, (ch, _) in prog.choices.items() if n.name in self.measured}
        if now != self.picks:   # prog runs another choice (measured again while a program of its own is in force)
            prog = self._compiled(self.picks)
        timed = [prog] + [s.prog for s in solos]
        if ahead.running():   # a new step's compile helper runs: it compiles the others' steps meanwhile
            ahead.functions([(p.entry, _step_args(p, data, batch)) for p in timed[1:] if p.target == "cpu"], first=True)
        runs = [_step_timer(p, data, batch) for p in timed]
        n = [max(1, int(M.TIME_BLOCK / max(run(2) / 2, 1e-7))) for run in runs]
        times = [[] for _ in runs]
        for _ in range(M.TIME_ROUNDS):
            for k, run in enumerate(runs):
                times[k].append(run(n[k]) / n[k])
        base = float(np.median(times[0]))
        for s, t in zip(solos, times[1:]):
            s.cand.timed = (float(np.median(t)) / base, self.reference.work)
        self.seconds += time.perf_counter() - t0

    def final_choice(self, solos) -> dict:
        """{node: estimator}: the last sweep's choice, or a program of its own whose score is clearly
        below it (`_clearly_less`), or tied with it and of clearly less work, or tied, of
        about the same work and the choice in force (`prefer_in_tie`); the table's rows of the
        programs of their own added."""
        inc = self.reference
        best, won = inc, None
        for solo in solos:
            c = solo.cand
            if c is None or inc is None:
                continue
            in_force = all(self.defaults.get(n) == solo.estimator for n in solo.nodes)
            if _clearly_less(c, best) or (not apart(c, best, M.SOLO_MARGIN) and prefer_in_tie(c, best, in_force)):
                best, won = c, solo
        table = list(self.table)
        for solo in solos:
            alone = f"in a program of its own (at {', '.join(solo.nodes)})"
            for n in solo.nodes:
                if solo.cand is None:
                    why = (f"its program of its own failed ({solo.error})" if solo.error else
                           f"in a program of its own, {solo.skipped}" if solo.skipped else "not measured")
                    table.append(Candidate(n, solo.estimator, verdict=f"excluded: {why}"))
                    continue
                c = Candidate(n, solo.estimator, solo.cand.variance, solo.cand.se, solo.rows)
                c.draws, c.chosen, c.timed = solo.cand.draws, solo is won, solo.cand.timed
                ratio = (f"{c.score / inc.score:.2f}x the measured program's choice's ({inc.score:.4g} over "
                         f"{inc.draws} draws)" if inc is not None and inc.score > 0 else "")
                timed = f", its time per estimate {c.timed[0]:.2f}x" if c.timed is not None else ""
                tied = inc is not None and not (apart(c, inc, M.SOLO_MARGIN) or apart(inc, c, M.SOLO_MARGIN))
                if solo is won:
                    why = "; chosen" + (" (tied on score: less work, or the choice in force)" if tied else "")
                else:
                    why = "; tied on score: not chosen (more work, or not the choice in force)" if tied else ""
                c.verdict = f"{alone}: score {ratio}{timed}{why}"
                table.append(c)
        if won is not None:
            for c in table:
                if c.node in won.nodes and c.chosen and c.estimator != won.estimator:
                    c.chosen = False
                    c.verdict += f"; '{won.estimator}' measured less in a program of its own"
        self.table = self._sorted(table)
        return won.choice if won is not None else dict(self.picks)

    def settled(self, prog):
        """After `measure_solos`: `prog` (the program of the sweep's choice) labelled with the whole
        table, or the program of the choice that a program of its own won, from `prog`'s parameters
        and state (compiled already)."""
        solos, self.pending = self.pending, []   # (timing calls the programs: nothing pending meanwhile)
        self._time_solos(prog, solos)
        choice = self.final_choice(solos)
        now = {n.name: ch.estimator for n, (ch, _) in prog.choices.items() if n.name in self.measured}
        if choice == now:
            self.label(prog)
            return prog
        new = self._started(self._take_program(choice))
        start_from(new, self.prog)   # the measured program's warmed state of the new estimators,
        start_from(new, prog)        # then prog's parameters and the state it has
        self.label(new)
        new.measurement = self
        return new
