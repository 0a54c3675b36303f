"""A fit's parallel setting, chosen by measurement while it runs (`ThreadChooser`).

When fit chooses more than one thread by itself (the products' BLAS on every core, or each
batch's two halves at once on two of Numba's threads), another process on the same cores can make
that setting slower than one thread: a thread pool waits for its slowest thread, and a thread
whose core is shared with a busy process gets only a slice of it. So the trainer times its steps
under the parallel setting and under one thread and keeps the faster, checking again as the run
goes on:

- a probe: four segments of about PROBE_SECONDS of steps each, in the order parallel, one thread,
  one thread, parallel (a drift of the machine's load over the probe cancels); the parallel
  setting wins when its time per step is below one thread's by more than MARGIN (on equal terms
  one thread leaves the other core to the rest of the machine);
- a hold: the winner runs for a hold of HOLD_SECONDS, doubled after each probe that confirms it,
  up to MAX_HOLD_SECONDS, and back to HOLD_SECONDS when the winner changes; then a probe again.
  The losing setting thus takes about 2 PROBE_SECONDS in every hold: a few percent of the run.

Which settings are candidates, and what each does to the results: a split fit's parallel
setting is the batch's two halves at once, its one-thread setting the whole batch in one step
(faster on one thread than the halves in turn: one product of B rows for two of B / 2); both draw
the same noise by global row, and the gradients differ in the rounding of the halves' combination.
The BLAS's thread count changes the rounding of its products. So a fit that lets either follow the
load is reproducible up to rounding, and `split_rows=True` / `False`, `blas_threads=1` (or any
fixed count) make it reproducible bit for bit (fit's docstring).
"""
from __future__ import annotations

PROBE_SECONDS = 0.02     # one probe segment: this much of steps (a chunk is cut to about this)
HOLD_SECONDS = 1.0       # the winner's first hold
MAX_HOLD_SECONDS = 16.0  # the longest hold, after probes that confirm the winner
MARGIN = 0.05            # the parallel setting must be this much faster per step to win


class ThreadChooser:
    """Chooses between `settings` (each a (label, apply) pair, the parallel one first, one thread
    second) by the time per step the trainer reports (`record`).

    The trainer calls `apply()` once before the first step and again after anything that changes
    the threads (an evaluation), `steps_cap(n)` to cut a chunk of n steps while probing (to about
    PROBE_SECONDS at the time per step last seen under the setting probed: under load the
    parallel setting's steps can take several times one thread's), and
    `record(steps, seconds)` after each run of steps. `log` lists the decisions: (step,
    {label: seconds per step}, the winner's label)."""

    def __init__(self, settings):
        if len(settings) != 2:
            raise ValueError("ThreadChooser: settings are (parallel, one thread)")
        self.settings = list(settings)
        self.current = 0              # the parallel setting until a probe says otherwise
        self.winner = 0
        self.hold = HOLD_SECONDS
        self.probe = []               # the indices of the probe's segments still to run
        self.seg_steps = 0
        self.seg_seconds = 0.0
        self.times = {0: [0, 0.0], 1: [0, 0.0]}   # setting -> [steps, seconds] in this probe
        self.steps_done = 0
        self.log = []
        self.warm = False             # the first run of steps (compiles, first-touch) is not timed
        self.last = {0: None, 1: None}  # setting -> seconds per step in its latest run
        self._start_probe()

    @property
    def label(self) -> str:
        return self.settings[self.current][0]

    @property
    def probing(self) -> bool:
        return bool(self.probe)

    def apply(self):
        self.settings[self.current][1]()

    def steps_cap(self, n: int) -> int:
        """A chunk of n steps cut to about PROBE_SECONDS while probing."""
        per = self.last[self.current] or self.last[1 - self.current]
        if not self.probing or not per or per <= 0:
            return n
        return max(1, min(n, int(PROBE_SECONDS / per)))

    def _switch(self, index):
        if index != self.current:
            self.current = index
            self.apply()

    def _start_probe(self):
        self.probe = [0, 1, 1, 0]
        self.times = {0: [0, 0.0], 1: [0, 0.0]}
        self.seg_steps, self.seg_seconds = 0, 0.0
        self._switch(self.probe[0])

    def record(self, steps: int, seconds: float):
        """steps trained in `seconds` under the current setting."""
        self.steps_done += steps
        if steps > 0:
            self.last[self.current] = seconds / steps
        if not self.warm:
            self.warm = True
            return
        self.seg_steps += steps
        self.seg_seconds += seconds
        if self.probing:
            if self.seg_seconds < PROBE_SECONDS:
                return
            acc = self.times[self.current]
            acc[0] += self.seg_steps
            acc[1] += self.seg_seconds
            self.seg_steps, self.seg_seconds = 0, 0.0
            self.probe.pop(0)
            if self.probe:
                self._switch(self.probe[0])
                return
            per = {i: s / max(n, 1) for i, (n, s) in self.times.items()}
            win = 0 if per[0] < (1.0 - MARGIN) * per[1] else 1
            self.hold = min(2 * self.hold, MAX_HOLD_SECONDS) if win == self.winner else HOLD_SECONDS
            self.winner = win
            self.log.append((self.steps_done, {self.settings[i][0]: per[i] for i in per}, self.settings[win][0]))
            self._switch(win)
            return
        if self.seg_seconds >= self.hold:
            self._start_probe()
