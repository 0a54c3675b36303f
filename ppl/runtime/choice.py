"""The measured choice a Program compiled without pilot data waits for (policy "measured"): made
on the first batch a gradient is asked for, after which the program becomes the program of the
choice (a mixin of ppl.runtime.program.Program; the compiler hands it the function that measures
and compiles, ppl/compiler/autotune.py, so this layer imports no compiler)."""
from __future__ import annotations

import numpy as np

from .. import validate as V
from ..errors import ModelError


class MeasuredChoice:
    """Program's measured choice still to make (a mixin of ppl.runtime.program.Program)."""

    _measure = None   # (the nodes measured, choose(pilot, start) -> the program of the choice), or None

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
        if self._measure is None:
            return self
        _, choose = self._measure
        self._measure = None
        pilot = data if data is not None else V.integer(batch, "batch", lo=1) if batch is not None else None
        if pilot is None:
            raise ModelError(f"model '{self.model.name}': the measured choice needs a batch: pass data (or batch=N "
                             f"for a model without inputs)")
        self._adopt(choose(pilot, self))
        return self

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
