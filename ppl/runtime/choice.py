"""The measured choice a Program compiled without pilot data waits for (policy "measured"): made
on the first batch a gradient is asked for, after which the program becomes the program of the
choice (a mixin of ppl.runtime.program.Program; the compiler hands it the function that measures
and compiles, ppl/compiler/autotune.py, so this layer imports no compiler)."""
from __future__ import annotations

import threading

import numpy as np

from .. import validate as V
from ..errors import ModelError


class MeasuredChoice:
    """Program's measured choice still to make (a mixin of ppl.runtime.program.Program)."""

    _measure = None   # (the nodes measured, choose(pilot, start) -> the program of the choice), or None
    measurement = None   # the measured choice's Measurement (ppl/compiler/autotune.py): it measures again
    _measuring = None    # the measured choice made on a thread after a first gradient (_Measuring), or None
    start_ahead = None   # hands this program's step to a compile helper (compiler/pipeline.py), or None

    def measure_on_first_batch(self, nodes, choose) -> None:
        """Hold the measured choice of `nodes` until a first batch: `choose(pilot, start)` then
        returns the program of the choice (ppl/compiler/autotune.py), which this one becomes."""
        self._measure = (tuple(nodes), choose)
        for node, (ch, _) in self.choices.items():
            if node.name in nodes:
                ch.reason += " (the rule table's choice until the first batch a gradient is asked for; then measured)"

    @property
    def measure_pending(self) -> tuple:
        """The nodes whose measured choice waits for a first batch (grad, fit or `choose`); () when none."""
        return () if self._measure is None else self._measure[0]

    def choose(self, data=None, batch=None, steps=None):
        """Make the measured choice now, on this batch (policy "measured" compiled without pilot
        data; nothing to do otherwise): the candidates are measured from this program's
        parameters and state, and the program becomes the program of the choice, its parameters,
        state and `explain()` table with it. `steps`: the length of the run the choice is for,
        where it is known (fit gives it): the candidates of programs of their own are measured only
        where the run can repay it (ppl/compiler/alone.py, `budget_solos`). Returns self."""
        if steps is not None:
            steps = V.integer(steps, "choose: steps (the run's length)", lo=0)
        self._choose(data, batch, steps=steps)
        self.join_compile()
        return self

    def _choose(self, data, batch, first_step=None, steps=None):
        """choose(), or with first_step=(seed, step) (a first gradient asked for): that step run by
        this program (the rule table's choice, an unbiased estimate at the cost of its own compile;
        its loss returned, its gradient in grad_buffer), the measured choice made meanwhile on a
        thread of its own from a copy of the parameters and state (`_measuring`); the next call
        waits for it and takes its program."""
        if self._measure is None:
            return None
        _, choose = self._measure
        self._measure = None
        pilot = data if data is not None else V.integer(batch, "batch", lo=1) if batch is not None else None
        if pilot is None:
            raise ModelError(f"model '{self.model.name}': the measured choice needs a batch: pass data (or batch=N "
                             f"for a model without inputs)")
        self._inputs(data, batch)   # bad data is the caller's error here, not a candidate's
        if first_step is None:
            self._take(choose(pilot, self), steps)
            return None
        if self.start_ahead is not None:   # its step runs now: a helper compiles it too (held back till now)
            self.start_ahead()
        loss = self._run(data, batch, first_step[0], first_step[1], 1)[0]   # the rule table's step, compiled
        self._measuring = _Measuring(choose, _copy_pilot(pilot), Snapshot(self))
        return loss

    def _take(self, new, steps=None) -> None:
        """Become `new`, the program of the measured choice (its step compiled, its programs of their
        own measured -- those a run of `steps` can repay, where given -- and decided:
        Measurement.settled), with this program's parameters."""
        m = new.measurement
        if m is not None and m.pending:
            if steps is not None:
                m.budget_solos(new, steps)
            m.measure_solos()
            new = m.settled(new)
        if new is not self:
            self._adopt(new)

    def join_compile(self) -> None:
        """Wait for the measured choice made on a thread (its programs compiled and measured there) and
        become the program of the choice, from this program's parameters as they are now."""
        job, self._measuring = self._measuring, None
        if job is None:
            return
        new = job.join()
        self.pull()
        for k, v in self.params.items():   # the caller's parameters now (it may have stepped them since)
            if k in new.params and new.params[k].shape == v.shape:
                new.params[k][...] = v
        new.push()
        self._take(new)
    def _adopt(self, new) -> None:
        """Become program `new` (the same model under other estimators): its step, layout and
        state; the parameter arrays are kept where the layouts of the parameters agree (views of
        them stay valid), else taken with their values; the programs derived from this one (twins,
        the evaluation's: compiled from the declared model and options of their own) kept."""
        same = [(n, o, tuple(shape)) for n, o, shape, _ in self.layout.params] == \
               [(n, o, tuple(shape)) for n, o, shape, _ in new.layout.params]
        if same and self.layout.n_theta == new.layout.n_theta:
            self.theta[:] = new.theta
            new.theta, new.grad_buffer, new.params = self.theta, self.grad_buffer, self.params
        guard = self._guard is not None
        twins = {**new._twins, **self._twins}   # derived programs: the declared model's, whatever its estimators
        self.__dict__.update(new.__dict__)
        self._twins = twins
        if guard:
            self.check_steps(True)

    def remeasure(self, data=None, batch=None, seed=0, step=0, steps=None) -> list:
        """Measure the candidates of the measured choice again, at the current parameters and state,
        on this batch (steps `step` .. of `seed`); a node whose candidate now measures clearly better
        (ppl/compiler/autotune.py's `decide`: beyond the tie margin of the one in force) switches, and
        the program becomes the program of the new choice (its step compiled). Returns the
        measurement's records (`choice_records`: per node, from, to and the figures); [] when the
        choice was not measured. `steps`: the run's steps still to go, where known (as `choose`)."""
        if self.measurement is None:
            return []
        before = {n.name: ch.estimator for n, (ch, _) in self.choices.items()}
        new = self.measurement.again(self, data, batch, seed, step, steps)
        if new is not None:
            self._adopt(new)
        return choice_records(self, step, before, self.measurement.measured)


def choice_records(prog, step: int, before: dict, nodes) -> list:
    """History.choices' entries of a measured choice at `step`: per node measured, the estimator
    before and after and the measured candidates (estimator, variance, its SE, rows, score =
    variance x work: the table's)."""
    table = prog.autotune_table or []
    after = {n.name: ch.estimator for n, (ch, _) in prog.choices.items()}
    return [{"step": step, "node": name, "from": before[name], "to": after[name],
             "measured": [(r["estimator"], r["variance"], r["se"], r["rows"], r["score"]) for r in table
                          if r["node"] == name and r["rows"]]} for name in nodes]


class _Measuring:
    """The measured choice made on a thread of its own: `choose(pilot, start)` (the compiler's
    autotune, from `start`'s parameters and state), then the program of the choice's step compiled
    and its programs of their own measured, while the caller goes on; `join` waits and returns the
    program (an error there leaves the rule table's: ppl/compiler/autotune.py falls back itself)."""

    def __init__(self, choose, pilot, start):
        self.result, self.error = None, None

        def run():
            try:
                new = choose(pilot, start)
                m = new.measurement
                if m is not None:
                    data, batch = (None, pilot) if isinstance(pilot, int) else (pilot, None)
                    new.grad(data, batch=batch)   # its step compiled (its state kept: a copy's)
                    m.carry(new)
                    if m.pending:
                        m.measure_solos()
                self.result = new
            except BaseException as e:   # raised where the program is next used
                self.error = e
        self.thread = threading.Thread(target=run, name="ppl-measure", daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result


class Snapshot:
    """A program's parameters and state as they were, read by name as a program's are
    (compiler/measure.start_from): what a measurement starts from while the program itself moves on
    (the caller steps it; the measured program runs its draws)."""

    def __init__(self, prog):
        prog.pull()
        self.params = {k: np.array(v) for k, v in prog.params.items()}
        self.state, self.layout = np.array(prog.state), prog.layout

    def pull(self):
        pass


def _copy_pilot(pilot):
    """The batch as it is now (the caller may reuse its arrays while the measurement runs)."""
    if isinstance(pilot, dict):
        return {k: np.array(v) for k, v in pilot.items()}
    return int(pilot) if isinstance(pilot, (int, np.integer)) else np.array(pilot)
