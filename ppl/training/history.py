"""What a training run did (`History`): a bounded record of the per-step training loss, the
held-out evaluations, timings and (fit's track_variance) the gradient variance per layer.

Runs of 10^7 - 10^8 steps are ordinary (a step takes microseconds), so the per-step losses are
not kept by default beyond KEEP_STEPS: the record (kernels/cpu/record.py) is a curve of at most
RECORD_POINTS points (the mean, minimum and maximum of equal blocks of steps and the EMA at each
block's end) and running statistics; its size does not depend on the number of steps. The same
record goes into fit's checkpoint and the command line's curve.csv. `keep_losses=True` also
keeps every step's loss (8 bytes a step).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError

RECORD_POINTS = 2048     # points of the loss curve (an even number); 4 float64 each
KEEP_STEPS = 100_000     # keep_losses=None: every step's loss kept up to this many steps (800 kB)


def _kernels():
    from ..kernels.cpu import record as cpu_record   # imported when a record is written to, not with ppl
    return cpu_record


def _check_keep(keep, where):
    if keep is not None and not isinstance(keep, (bool, np.bool_)):
        raise ModelError(f"{where}: keep_losses must be True (every step's loss), False (the bounded record only) "
                         f"or None (every step up to {KEEP_STEPS:,} steps), got {keep!r}")
    return None if keep is None else bool(keep)


@dataclass
class History:
    """What a run did: the training loss record, held-out evaluations, timings.

    The training loss: `curve()` (at most RECORD_POINTS points: per block of steps the mean,
    min, max and the EMA at its end), `ema` (the smoothed loss now), `loss_mean` / `loss_min` /
    `loss_max` / `last_loss` (the whole run), and `loss`, every step's loss, while kept
    (keep_losses: True always, False never, None (default) while steps <= KEEP_STEPS)."""

    eval_steps: list = field(default_factory=list)
    eval: list = field(default_factory=list)          # held-out objective (or eval_fn's value) at eval_steps
    eval_seconds: list = field(default_factory=list)  # training wall time (steps only) at eval_steps; NaN
                                                       # for evaluations of a resumed run's earlier part
    eval_train: list = field(default_factory=list)    # the training loss's EMA at eval_steps
    first_step_seconds: float = 0.0                    # includes loading / JIT-compiling the step
    seconds: float = 0.0                               # wall time of the later steps
    threads: list = field(default_factory=list)        # fit's timed parallel choices: (step, {setting: s
                                                       # per step}, the one kept); ppl/training/threads.py
    choices: list = field(default_factory=list)        # the measured choices: per node and measurement, a dict
                                                       # (step, node, from, to, measured: [(estimator,
                                                       # variance, SE, rows, score)]); fit.choice_records
    measure_seconds: float = 0.0                       # wall time of the measurements during the run (the
                                                       # loop's recompile after a switch included)
    variance: dict | None = None                       # fit's track_variance: the gradient variance per layer
                                                       # along the run (add_variance); None when not tracked
    variance_seconds: float = 0.0                      # wall time of those measurements in this run
    start_step: int = 0                                # > 0 when resumed
    ema_decay: float = 0.98                            # the decay of the record's EMA
    keep_losses: bool | None = None
    points: int | None = None                          # None: RECORD_POINTS

    def __post_init__(self):
        if self.points is None:
            self.points = RECORD_POINTS
        self.keep_losses = _check_keep(self.keep_losses, "History")
        d = float(self.ema_decay)
        if not 0.0 <= d < 1.0:
            raise ModelError(f"History: ema_decay must be in [0, 1), got {self.ema_decay!r}")
        p = int(self.points)
        if p < 2 or p % 2:
            raise ModelError(f"History: points must be an even number >= 2, got {self.points!r}")
        self._ints = np.array([0, 1, 0, 0, p], np.int64)
        self._flts = np.zeros(9, np.float64)
        self._flts[4] = d
        self._pts = np.zeros((4, p), np.float64)
        self._kept = np.zeros(0 if self.keep_losses is False else 64, np.float64)
        self._keeping = self.keep_losses is not False

    # ------------------------------------------------------------------ writing
    def kernel_call(self) -> tuple:
        """(kernel, arguments) of the call append() makes, for a helper process to compile ahead
        (ppl/compiler/ahead.py)."""
        return _kernels().record_losses, (self._ints, self._flts, self._pts, np.zeros(1, np.float64), 1)

    def append(self, losses) -> None:
        """Record the next steps' training losses (an array or sequence of floats)."""
        a = np.ascontiguousarray(losses, np.float64).reshape(-1)
        n = a.shape[0]
        if n == 0:
            return
        _kernels().record_losses(self._ints, self._flts, self._pts, a, n)
        if self._keeping:
            steps = int(self._ints[0])
            if self.keep_losses is None and steps > KEEP_STEPS:
                self._keeping, self._kept = False, np.zeros(0, np.float64)   # bounded from here on
                return
            if steps > self._kept.shape[0]:
                grown = np.empty(max(steps, 2 * self._kept.shape[0]), np.float64)
                grown[:steps - n] = self._kept[:steps - n]
                self._kept = grown
            self._kept[steps - n:steps] = a

    def add_variance(self, step: int, layers: dict, draws: int, rows=None) -> None:
        """Record the gradient variance measured after `step` steps: layers {layer: (trace of the
        covariance of one estimate over the layer's entries, its standard error)} over `draws`
        draws on the batch of data rows `rows` (None: a model without inputs). History.variance is
        {"step": int64 (n,), "layers": {layer: {"var": float64 (n,), "se": float64 (n,)}},
        "draws": D, "rows": the rows or None}."""
        v = self.variance
        if v is None:
            v = self.variance = {"step": np.zeros(0, np.int64), "draws": int(draws),
                                 "rows": None if rows is None else np.array(rows, np.int64),
                                 "layers": {k: {"var": np.zeros(0), "se": np.zeros(0)} for k in layers}}
        if int(draws) != int(v["draws"]) or list(layers) != list(v["layers"]):
            raise ModelError(f"History.add_variance: {draws} draws of layers {list(layers)}; the record holds "
                             f"{v['draws']} draws of layers {list(v['layers'])}")
        v["step"] = np.append(v["step"], np.int64(step))
        for k, (var, se) in layers.items():
            v["layers"][k]["var"] = np.append(v["layers"][k]["var"], float(var))
            v["layers"][k]["se"] = np.append(v["layers"][k]["se"], float(se))

    # ------------------------------------------------------------------ reading
    @property
    def steps(self) -> int:
        return int(self._ints[0])

    @property
    def keeps_losses(self) -> bool:
        """Is every step's loss kept (`loss`)?"""
        return self._keeping

    @property
    def loss(self) -> np.ndarray:
        """Every step's training loss (a copy), when kept (keeps_losses)."""
        if not self._keeping:
            raise ModelError(f"History.loss: this run of {self.steps:,} steps kept the bounded record only "
                             f"(keep_losses={self.keep_losses}: every step up to {KEEP_STEPS:,} steps by default); "
                             f"read curve() and ema, or train with fit(..., keep_losses=True) to keep every step")
        return self._kept[:self.steps].copy()

    @property
    def ema(self) -> float:
        """The bias-corrected EMA of the training loss after the last step (NaN before any)."""
        if self.steps == 0:
            return float("nan")
        return float(_kernels().ema_value(self._flts[3], self._flts[4], self.steps))

    @property
    def loss_mean(self) -> float:
        return float(self._flts[5] / self.steps) if self.steps else float("nan")

    @property
    def loss_min(self) -> float:
        return float(self._flts[6]) if self.steps else float("nan")

    @property
    def loss_max(self) -> float:
        return float(self._flts[7]) if self.steps else float("nan")

    @property
    def last_loss(self) -> float:
        return float(self._flts[8]) if self.steps else float("nan")

    def curve(self) -> dict:
        """The loss curve: {'step', 'mean', 'min', 'max', 'ema'} arrays, one entry per finished block
        of `width` steps (every step while the run has at most `points` steps): 'step' counts the
        steps up to the block's end (1-based), 'ema' is the EMA there; a last, unfinished block is
        included (its 'step' the run's last)."""
        npts, width, c = int(self._ints[2]), int(self._ints[1]), int(self._ints[3])
        steps = (np.arange(1, npts + 1, dtype=np.int64) * width)
        cols = [self._pts[k, :npts] for k in range(4)]
        if c:
            steps = np.append(steps, self.steps)
            cols = [np.append(cols[0], self._flts[0] / c), np.append(cols[1], self._flts[1]),
                    np.append(cols[2], self._flts[2]), np.append(cols[3], self.ema)]
        return {"step": steps, "mean": cols[0].copy(), "min": cols[1].copy(), "max": cols[2].copy(),
                "ema": cols[3].copy()}

    def smoothed(self, decay: float | None = None) -> np.ndarray:
        """Bias-corrected exponential moving average of the training loss: at every step while
        the losses are kept (any decay), else at the points of curve() (the record's decay only)."""
        if self._keeping:
            d = self.ema_decay if decay is None else float(decay)
            out, m = np.empty(self.steps), 0.0
            for i, v in enumerate(self._kept[:self.steps].tolist()):
                m = d * m + (1 - d) * v
                out[i] = m / (1 - d ** float(i + 1))
            return out
        if decay is not None and float(decay) != self.ema_decay:
            raise ModelError(f"History.smoothed: decay={decay} needs every step's loss, which this run did not keep; "
                             f"leave decay out (the record's EMA, decay {self.ema_decay}) or train with "
                             f"keep_losses=True")
        return self.curve()["ema"]

    @property
    def step_time(self) -> float:
        """Mean seconds per step after the first (the first includes compilation)."""
        n = self.steps - self.start_step - 1
        return self.seconds / n if n > 0 else float("nan")

    def __repr__(self) -> str:
        if not self.steps:
            return "History(0 steps)"
        kept = "every step kept" if self._keeping else f"{int(self._ints[2])} points of {int(self._ints[1])} steps"
        ev = f", {len(self.eval)} evaluations (last {self.eval[-1]:.6g} at step {self.eval_steps[-1]})" if self.eval else ""
        resumed = f", resumed at step {self.start_step}" if self.start_step else ""
        speed = f"; {1e6 * self.step_time:.3g} us/step" if self.seconds > 0 else ""
        return (f"History({self.steps:,} steps{resumed}: training loss ema {self.ema:.6g}, last {self.last_loss:.6g}, "
                f"mean {self.loss_mean:.6g}, min {self.loss_min:.6g}, max {self.loss_max:.6g}; {kept}{ev}{speed})")

    __str__ = __repr__

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        """The record as arrays for a checkpoint (`loss`: the kept losses, else empty)."""
        npts = int(self._ints[2])
        return {"loss": self._kept[:self.steps].copy() if self._keeping else np.zeros(0, np.float64),
                "record.kept": np.array(self._keeping), "record.ints": self._ints.copy(),
                "record.flts": self._flts.copy(), "record.pts": self._pts[:, :npts].copy(),
                "eval_steps": np.array(self.eval_steps, np.int64), "eval": np.array(self.eval, np.float64),
                "eval_train": np.array(self.eval_train, np.float64), **self._variance_state()}

    def _variance_state(self) -> dict:
        """History.variance as a checkpoint's arrays (none when not tracked)."""
        v = self.variance
        if v is None:
            return {}
        names = list(v["layers"])
        return {"variance.step": v["step"].copy(), "variance.draws": np.array(v["draws"], np.int64),
                "variance.rows": np.zeros(0, np.int64) if v["rows"] is None else v["rows"].copy(),
                "variance.layers": np.array(names, dtype=str),
                "variance.var": np.array([v["layers"][k]["var"] for k in names], np.float64).reshape(len(names), -1),
                "variance.se": np.array([v["layers"][k]["se"] for k in names], np.float64).reshape(len(names), -1)}

    @staticmethod
    def _variance_of(ck: dict, where: str):
        """History.variance of a checkpoint's fields (_variance_state's), or None."""
        if "variance.step" not in ck:
            return None
        step = np.asarray(ck["variance.step"]).reshape(-1)
        names = [str(k) for k in np.asarray(ck.get("variance.layers", np.zeros(0, str))).reshape(-1)]
        var, se = np.asarray(ck.get("variance.var", 0.0)), np.asarray(ck.get("variance.se", 0.0))
        draws = np.asarray(ck.get("variance.draws", 0))
        ok = (step.dtype.kind == "i" and draws.shape == () and int(draws) >= 2 and var.ndim == 2
              and var.shape == (len(names), step.size) and se.shape == var.shape and var.dtype.kind == "f"
              and se.dtype.kind == "f" and int(ck["step"]) >= (int(step.max()) if step.size else 0))
        if not ok:
            raise ModelError(f"{where}: its gradient variance record does not fit (damaged, or not written by "
                             f"ppl.fit); start afresh (resume=False)")
        rows = np.asarray(ck.get("variance.rows", np.zeros(0, np.int64)), np.int64).reshape(-1)
        return {"step": step.astype(np.int64), "draws": int(draws), "rows": rows if rows.size else None,
                "layers": {k: {"var": var[i].copy(), "se": se[i].copy()} for i, k in enumerate(names)}}

    @classmethod
    def from_state(cls, ck: dict, where: str, ema_decay: float = 0.98, keep_losses: bool | None = None) -> "History":
        """The History of a checkpoint's fields (History.state's, or the per-step `loss` of a
        checkpoint written before the record, folded in again), continuing with keep_losses;
        raises ModelError naming `where` when the fields are inconsistent or keep_losses=True
        asks for losses the checkpoint does not hold."""
        keep = _check_keep(keep_losses, where)
        step = int(ck["step"])
        evs, ev = np.asarray(ck["eval_steps"]).reshape(-1), np.asarray(ck["eval"]).reshape(-1)
        if evs.shape != ev.shape:
            raise ModelError(f"{where}: {evs.size} evaluation steps but {ev.size} evaluations; start afresh "
                             f"(resume=False)")
        train = np.asarray(ck.get("eval_train", np.full(ev.shape, np.nan))).reshape(-1)
        if train.shape != ev.shape:
            raise ModelError(f"{where}: {train.size} training EMAs for {ev.size} evaluations; start afresh "
                             f"(resume=False)")
        if "record.ints" not in ck:   # written before the record: every step's loss
            loss = np.asarray(ck["loss"], np.float64).reshape(-1)
            if loss.size != step:
                raise ModelError(f"{where}: {loss.size} losses for {step} steps; start afresh (resume=False)")
            h = cls(ema_decay=ema_decay, keep_losses=keep)
            h.append(loss)
        else:
            ints, flts, pts = ck["record.ints"], ck["record.flts"], ck["record.pts"]
            kept = bool(ck.get("record.kept", False))
            loss = np.asarray(ck["loss"], np.float64).reshape(-1)
            ok = (ints.shape == (5,) and ints.dtype.kind == "i" and flts.shape == (9,) and flts.dtype.kind == "f"
                  and pts.ndim == 2 and pts.shape[0] == 4 and pts.dtype.kind == "f")
            if ok:
                steps, width, npts, c, cap = (int(x) for x in ints)
                ok = (steps == step and cap >= 2 and cap % 2 == 0 and width >= 1 and width & (width - 1) == 0
                      and 0 <= npts <= cap and pts.shape[1] == npts and 0 <= c < width
                      and npts * width + c == steps and (loss.size == steps if kept else loss.size == 0)
                      and 0.0 <= float(flts[4]) < 1.0)
            if not ok:
                raise ModelError(f"{where}: its loss record does not fit its step {step} (damaged, or not written "
                                 f"by ppl.fit); start afresh (resume=False)")
            if float(flts[4]) != float(ema_decay):
                raise ModelError(f"{where}: its loss record's EMA has decay {float(flts[4])}, this fit asks ema="
                                 f"{ema_decay}; resume with ema={float(flts[4])} or start afresh (resume=False)")
            if keep and not kept:
                raise ModelError(f"{where} does not hold every step's loss (it was trained without keep_losses); "
                                 f"resume with keep_losses=None or False, or start afresh (resume=False)")
            h = cls(ema_decay=ema_decay, keep_losses=keep, points=cap)
            h._ints[:], h._flts[:] = ints, flts
            h._pts[:, :npts] = pts
            h._keeping = kept and keep is not False and (keep is True or steps <= KEEP_STEPS)
            if h._keeping:
                h._kept = loss.copy()
        if keep and not h._keeping:
            raise ModelError(f"{where} does not hold every step's loss; resume with keep_losses=None or False, or "
                             f"start afresh (resume=False)")
        h.eval_steps, h.eval, h.eval_train = [int(s) for s in evs], [float(v) for v in ev], [float(v) for v in train]
        h.eval_seconds = [float("nan")] * len(h.eval)
        h.variance = cls._variance_of(ck, where)
        h.start_step = step
        return h
