"""A fit's parallel setting: which threads fit may use by itself (the rules at the end of this
module) and, when it took them, the choice between them and one thread by measurement while it
runs (`ThreadChooser`).

The rules: where the user left the threads to ppl, a batch of at least SPLIT_MIN_BATCH rows of a
model with small weight matrices, or of at least SPLIT_MIN_ROWS evaluated rows (the batch's rows
times the graph's rows per data row) of any model, runs its two halves at once on two of Numba's
threads (`split_rows_rule`); otherwise ppl cuts its large products and optimiser updates in parts
on every core (`parts_rule`, kernels/native/parts.py), the BLAS at one thread (`blas_threads_rule`).

When fit chooses more than one thread by itself, another process on the same cores can make
that setting slower than one thread: a thread pool waits for its slowest thread, and a thread
whose core is shared with a busy process gets only a slice of it. So the trainer times its steps
under the parallel setting and under one thread and keeps the faster, checking again as the run
goes on:

- the first runs of steps, for at least WARM_SECONDS (compiles, first touches; not timed), train on one
  thread: a thread pool another library ran just before (OpenBLAS's threads after a threaded product,
  XLA's) may still spin on the cores for a moment, and a probe then would time the parallel setting
  against it and hold one thread for a quiet machine's whole hold;
- a probe: four segments of about PROBE_SECONDS of steps each, in the order parallel, one thread,
  one thread, parallel (a drift of the machine's load over the probe cancels); the parallel
  setting wins when its time per step is below one thread's by more than MARGIN (on equal terms
  one thread leaves the other core to the rest of the machine). When the first two segments
  differ by CLEAR times or more, the probe ends there: beside a busy process each step of a
  parallel segment can wait milliseconds for its other thread's core (so a segment's first chunk
  is FIRST_CHUNK steps);
- a hold: the winner runs for a hold of HOLD_SECONDS, doubled after each probe that confirms it,
  up to MAX_HOLD_SECONDS, and back to HOLD_SECONDS when the winner changes; then a probe again.
  The losing setting thus takes about 2 PROBE_SECONDS in every hold: a few percent of the run.

Where the parallel setting is ppl's parts, its first timed run also records the shapes of the
products it cut; they are measured then (each cut by its output's rows, by its columns, or left
whole: part_kernels.calibrate) and that run is left out of the probe.

Which settings are candidates, and what each does to the results: a split fit's parallel
setting is the batch's two halves at once, its one-thread setting the whole batch in one step
(faster on one thread than the halves in turn: one product of B rows for two of B / 2); both draw
the same noise by global row, and the gradients differ in the rounding of the halves' combination.
A product cut in parts, as the BLAS's thread count, may change the rounding of its entries. So a
fit that lets either follow the load is reproducible up to rounding, and `split_rows=True` /
`False`, `blas_threads=1` (or any fixed count) make it reproducible bit for bit (fit's docstring).
"""
from __future__ import annotations

import numpy as np

from .. import validate as V
from ..errors import ModelError
from ..kernels import numba_compat
from ..kernels.native import blas
from ..kernels.families.optim import ADAM_PART_MIN

PROBE_SECONDS = 0.02     # one probe segment: this much of steps (a chunk is cut to about this)
HOLD_SECONDS = 1.0       # the winner's first hold
MAX_HOLD_SECONDS = 16.0  # the longest hold, after probes that confirm the winner
MARGIN = 0.05            # the parallel setting must be this much faster per step to win
CLEAR = 1.25             # a probe ends after its first two segments when one setting took this many
                         # times the other's time per step: under load each parallel segment costs its
                         # slower steps and risks a stall of a descheduled thread (BENCHMARKS.md)
WARM_SECONDS = 0.1       # the untimed first runs on one thread last at least this long (above)
FIRST_CHUNK = 2          # steps of a probe segment's first chunk: the setting's last time per step may be
                         # stale (a load that came since), so a segment overshoots by at most this much;
                         # beside a busy process each parallel step can wait milliseconds for a core


class ThreadChooser:
    """Chooses between `settings` (each a (label, apply) pair, the parallel one first, one thread
    second) by the time per step the trainer reports (`record`). `first_parallel`, if given, is
    called once, after the first timed run under the parallel setting (fit: the ways of cutting
    the products that run met, measured); when it returns True that run is left out of the probe.

    The trainer calls `apply()` once before the first step and again after anything that changes
    the threads (an evaluation), `steps_cap(n)` to cut a chunk of n steps while probing (to about
    PROBE_SECONDS at the time per step last seen under the setting probed: under load the
    parallel setting's steps can take several times one thread's), and
    `record(steps, seconds)` after each run of steps. `log` lists the decisions: (step,
    {label: seconds per step}, the winner's label)."""

    def __init__(self, settings, first_parallel=None):
        if len(settings) != 2:
            raise ValueError("ThreadChooser: settings are (parallel, one thread)")
        self.settings = list(settings)
        self.first_parallel = first_parallel   # called after the first run under the parallel setting;
                                               # True: it measured something, so that run is not timed
        self.current = 1              # one thread for the untimed first run, then the probe's settings
        self.winner = 0
        self.hold = HOLD_SECONDS
        self.probe = [0, 1, 1, 0]     # the indices of the probe's segments still to run (the first
                                      # probe begins after the first run)
        self.seg_steps = 0
        self.seg_seconds = 0.0
        self.times = {0: [0, 0.0], 1: [0, 0.0]}   # setting -> [steps, seconds] in this probe
        self.steps_done = 0
        self.log = []
        self.warm = False             # the first runs of steps (compiles, first-touch) are not timed
        self.warm_seconds = 0.0       # ... until they have lasted WARM_SECONDS
        self.last = {0: None, 1: None}  # setting -> seconds per step in its latest run

    @property
    def label(self) -> str:
        return self.settings[self.current][0]

    @property
    def probing(self) -> bool:
        return bool(self.probe)

    def apply(self):
        self.settings[self.current][1]()

    def steps_cap(self, n: int) -> int:
        """A chunk of n steps cut to about PROBE_SECONDS while probing, and to FIRST_CHUNK steps
        at the start of a probe segment (timed afresh before the rest of the segment is cut)."""
        per = self.last[self.current] or self.last[1 - self.current]
        if not self.probing or not per or per <= 0:
            return n
        cap = max(1, min(n, int(PROBE_SECONDS / per)))
        return min(cap, FIRST_CHUNK) if self.seg_steps == 0 else cap

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
        if self.current == 0 and self.warm and self.first_parallel is not None and steps > 0:
            hook, self.first_parallel = self.first_parallel, None
            if hook():   # (the parts' ways of cutting each product, measured once it ran in parts)
                return
        if steps > 0:
            self.last[self.current] = seconds / steps
        if not self.warm:   # a compile, first touches: on one thread, as beside a load the first
            self.warm_seconds += seconds   # parallel region may wait a time slice for its other thread's
            if self.warm_seconds < WARM_SECONDS:   # core, and another pool's threads may still spin
                return
            self.warm = True
            self._switch(self.probe[0])
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
            per = {i: s / max(n, 1) for i, (n, s) in self.times.items()}
            timed = all(n for n, _ in self.times.values())
            if self.probe and not (timed and max(per.values()) >= CLEAR * min(per.values())):
                self._switch(self.probe[0])
                return
            self.probe = []
            win = 0 if per[0] < (1.0 - MARGIN) * per[1] else 1
            self.hold = min(2 * self.hold, MAX_HOLD_SECONDS) if win == self.winner else HOLD_SECONDS
            self.winner = win
            self.log.append((self.steps_done, {self.settings[i][0]: per[i] for i in per}, self.settings[win][0]))
            self._switch(win)
            return
        if self.seg_seconds >= self.hold:
            self._start_probe()


# ----- fit's automatic thread rules (fit's docstring)
def blas_threads_rule(prog, asked):
    """The BLAS thread count for this fit, or None to leave the BLAS as it is (fit's docstring):
    one where fit gives the cores to ppl's own parts (`parts_rule`)."""
    if asked is not None:
        return V.integer(asked, "fit: blas_threads", lo=1)
    if not blas.DEFAULTED or getattr(prog, "target", "cpu") != "cpu" or blas.get_threads() is None:
        return None
    return 1


def parts_rule(prog, asked_blas, batch_size):
    """In how many parts ppl splits the fit's large products and optimiser updates
    (kernels/native/parts.py): every core Numba may use where the user left the threads to ppl (no
    blas_threads, no OPENBLAS_NUM_THREADS), the program runs on the CPU and some of its work
    reaches two parts' grain (a weight matrix times the batch's rows, or its parameters); else 1,
    and its parallel kernels are not compiled."""
    if asked_blas is not None or blas_threads_rule(prog, None) is None:
        return 1
    import numba
    if _widest(prog) * evaluated_rows(prog, batch_size) < 2 * blas.PART_MIN and prog.theta.size < 2 * ADAM_PART_MIN:
        return 1
    return max(1, min(blas.cores(), numba.get_num_threads()))


SPLIT_MIN_BATCH = 128         # auto split: 1.22-1.68x at 128 rows, 0.77-0.93x at 32 for three of four estimators (BENCHMARKS.md)
SPLIT_MAX_WEIGHTS = 65_536    # auto split: no weight matrix above 256 x 256; at 784 x 200 the products' parts serve ...
SPLIT_MIN_ROWS = 400          # ... up to this many evaluated rows a batch; from there the halves (BENCHMARKS.md)


def split_rows_rule(prog, batch_size, asked, nopython, blas_threads=None):
    """Whether this fit splits each batch in two halves run at once (fit's docstring)."""
    cpu = getattr(prog, "target", "cpu") == "cpu" and hasattr(getattr(prog, "module", None), "step_rows")
    many_blas = blas_threads is not None and int(blas_threads) > 1
    if asked is not None:
        if not isinstance(asked, (bool, np.bool_)):
            raise ModelError(f"fit: split_rows must be True, False or None (auto), got {asked!r}")
        if asked and not cpu:
            raise ModelError("fit: split_rows=True splits a CPU program's batches; train a CUDA program on its GPU "
                             "without it")
        if asked and int(batch_size) < 2:
            raise ModelError(f"fit: split_rows=True needs batch_size >= 2 (two halves), got {batch_size}")
        if asked and nopython is False:
            raise ModelError("fit: split_rows=True runs in the nopython loop; drop nopython=False or split_rows=True")
        work, limit = (_work_tuples(prog), numba_compat.parfor_max_tuple_size()) if asked and cpu else (0, 0)
        if work > limit:
            raise ModelError(f"fit: split_rows=True runs the step's two halves in one of Numba's parallel loops, which "
                             f"takes at most {limit} work arrays per half; this step has {work}: drop "
                             f"split_rows=True, or raise the limit with the environment variable "
                             f"NUMBA_PARFOR_MAX_TUPLE_SIZE before Numba is imported")
        if asked and many_blas:
            raise ModelError(f"fit: split_rows=True runs each half's products at one BLAS thread; blas_threads="
                             f"{blas_threads} beside it would put two thread pools on the same cores (the 64-32 SBN "
                             f"at batch 256 ran 25x slower); drop one of the two")
        return bool(asked)
    if not cpu or nopython is False or many_blas or int(batch_size) < SPLIT_MIN_BATCH:
        return False
    import numba
    if numba.get_num_threads() < 2 or blas.cores() < 2:
        return False
    if _work_tuples(prog) > numba_compat.parfor_max_tuple_size():   # its parallel loop would not compile
        return False
    return small_weights(prog) or evaluated_rows(prog, batch_size) >= SPLIT_MIN_ROWS


def _work_tuples(prog) -> int:
    """The longest tuple of work arrays (or inputs) a half of a split step is given."""
    ws2, ws1 = prog.workspace(2)
    return max(len(ws2), len(ws1), len(getattr(prog, "data_inputs", ()) or ()))


def small_weights(prog) -> bool:
    """No weight matrix of the program exceeds SPLIT_MAX_WEIGHTS: its step is elementwise work
    that the halves spread better than the products' parts at any batch."""
    return _widest(prog) <= SPLIT_MAX_WEIGHTS


def evaluated_rows(prog, batch_size) -> int:
    """Rows a batch's step evaluates: its rows times the graph's rows per data row."""
    return int(batch_size) * int(getattr(prog, "rows_per_data_row", 1) or 1)


def _widest(prog) -> int:
    """Entries of the program's largest weight matrix (0 without one)."""
    return max((v.size for v in prog.params.values() if v.ndim == 2), default=0)
