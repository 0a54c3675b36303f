"""The measured choice a Program compiled without pilot data waits for (policy "measured"): made
on the first batch a gradient is asked for, after which the program becomes the program of the
choice (a mixin of ppl.runtime.program.Program; the compiler hands it the function that measures
and compiles, ppl/compiler/autotune.py, so this layer imports no compiler)."""
from __future__ import annotations

import threading

import numba
import numpy as np

from .. import validate as V
from ..errors import ModelError


class MeasuredChoice:
    """Program's measured choice still to make (a mixin of ppl.runtime.program.Program)."""

    _measure = None   # (the nodes measured, choose(pilot, start) -> the program of the choice), or None
    measurement = None   # the measured choice's Measurement (ppl/compiler/autotune.py): it measures again
    _compiling = None    # the program of the choice's step compiling on a thread (_Compile), or None

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

    def choose(self, data=None, batch=None):
        """Make the measured choice now, on this batch (policy "measured" compiled without pilot
        data; nothing to do otherwise): the candidates are measured from this program's
        parameters and state, and the program becomes the program of the choice, its parameters,
        state and `explain()` table with it. Returns self."""
        self._choose(data, batch)
        self.join_compile()
        return self

    def _choose(self, data, batch, first_step=None):
        """choose(), the program of the choice left to compile on a thread of its own (`_compiling`);
        first_step=(seed, step): that step's (loss, gradient) from the measured program meanwhile
        (the choice in force there: the same estimate), its state carried into the choice's."""
        if self._measure is None:
            return None
        _, choose = self._measure
        self._measure = None
        pilot = data if data is not None else V.integer(batch, "batch", lo=1) if batch is not None else None
        if pilot is None:
            raise ModelError(f"model '{self.model.name}': the measured choice needs a batch: pass data (or batch=N "
                             f"for a model without inputs)")
        self._inputs(data, batch)   # bad data is the caller's error here, not a candidate's
        new = choose(pilot, self)
        out, m = None, new.measurement
        if first_step is not None and m is not None:
            out = m.prog.grad(data, seed=first_step[0], step=first_step[1], batch=batch)
            m.carry(new)
        self._adopt(new)
        if m is not None:   # its step compiles on a thread while the caller goes on (a call waits for it),
            # then the candidates of programs of their own are measured there (the next call decides)
            args = self.args(data, batch) + (np.uint64(0), np.int64(0), 1)
            self._compiling = _Compile(self.entry, args, m.measure_solos if m.pending else None)
        return out

    def join_compile(self) -> None:
        """Wait for the program of the choice's step compiling on its thread (its error raised here)
        and the measurement of the candidates of programs of their own; where one of them won, the
        program becomes the program of that choice, from its parameters and state."""
        job, self._compiling = self._compiling, None
        if job is not None:
            job.join()
        m = self.measurement
        if m is not None and m.pending:
            m.measure_solos()   # done on the thread unless it was not started there
            new = m.settled(self)
            if new is not self:
                self._adopt(new)

    def _adopt(self, new) -> None:
        """Become program `new` (the same model under other estimators): its step, layout and
        state; the parameter arrays are kept where the layouts of the parameters agree (views of
        them stay valid), else taken with their values."""
        same = [(n, o, tuple(shape)) for n, o, shape, _ in self.layout.params] == \
               [(n, o, tuple(shape)) for n, o, shape, _ in new.layout.params]
        if same and self.layout.n_theta == new.layout.n_theta:
            self.theta[:] = new.theta
            new.theta, new.grad_buffer, new.params = self.theta, self.grad_buffer, self.params
        guard = self._guard is not None
        self.__dict__.update(new.__dict__)
        if guard:
            self.check_steps(True)

    def remeasure(self, data=None, batch=None, seed=0, step=0) -> list:
        """Measure the candidates of the measured choice again, at the current parameters and state,
        on this batch (steps `step` .. of `seed`); a node whose candidate now measures clearly better
        (ppl/compiler/autotune.py's `decide`: beyond the tie margin of the one in force) switches, and
        the program becomes the program of the new choice (its step compiled). Returns the
        measurement's records (`choice_records`: per node, from, to and the figures); [] when the
        choice was not measured."""
        if self.measurement is None:
            return []
        before = {n.name: ch.estimator for n, (ch, _) in self.choices.items()}
        new = self.measurement.again(self, data, batch, seed, step)
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


class _Compile:
    """A step's compile for the types of `args` on a thread of its own (Numba compiles under one lock:
    a call of the step meanwhile waits for it), then `then()` if given (its own errors are its
    own to keep); `join` waits and raises the compile's error."""

    def __init__(self, entry, args, then=None):
        self.error = None
        sig = tuple(numba.typeof(a) for a in args)

        def run():
            try:
                entry.compile(sig)
            except BaseException as e:   # raised where the program is next used
                self.error = e
                return
            if then is not None:
                then()
        self.thread = threading.Thread(target=run, name="ppl-compile", daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
