"""The training loop: minibatches, one fused gradient step and an in-place optimiser update per
step, a progress bar, held-out evaluation, atomic checkpoints and resume.

    from ppl.training.fit import fit
    hist = fit(prog, {"x": train_x}, ppl.optim.Adam(1e-3), steps=3000, batch_size=32,
               eval_every=500, eval_data={"x": test_x}, checkpoint="run/ckpt.npz")

The batch of step t and the random draw of step t depend only on (seed, t), so a resumed run
continues exactly as the uninterrupted one would have. A program counts the steps it was trained
(`prog.steps_trained`); a second fit continues from there, with new batches and noise. A checkpoint holds the parameters,
the estimator state, the optimiser state, the step, the evaluations and the bounded loss record
(ppl/training/history.py: its size does not grow with the steps); it is written to a
temporary file, read back and checked, then renamed over the old one, so a crash or a
diverged run never leaves a broken checkpoint behind.

The pieces: `plan_fit` checks every argument and makes every automatic choice (a `FitPlan`);
`Trainer` runs it: the first step from Python (`PythonSteps`, which compiles the step), then
chunks of steps in one nopython call each (`_Chunks`, kernels/cpu/train.py; by default when that
loop is compiled already for the step's signature or the program's runs are long enough to repay its
compile, NEW_SIGNATURE_STEPS; on the CUDA target a training step captured as a CUDA graph and replayed,
`DeviceChunks`) or one step at a time (the reference loop: the same bits), and between them
the record, evaluations, checkpoints and the progress bar. `split_rows` runs each batch's two
halves at once on two threads (`split_rows_rule`: the automatic rule); `blas_threads` sets the
products' threads for the fit (`blas_threads_rule`), and without it ppl splits the large products
itself (`parts_rule`). The held-out objective uses hard samples
(`heldout_loss`: a relaxed program is evaluated by its hard twin).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..compiler import ahead as compile_ahead
from ..runtime import checkpoint, first_steps
from .. import validate as V
from .data import Batches
from ..errors import ModelError
from .history import KEEP_STEPS, History
from ..runtime.notice import compiling
from ..runtime.plates import size_plate
from ..runtime.choice import choice_records
from .threads import ThreadChooser, blas_threads_rule, parts_rule, small_weights, split_rows_rule
from ..kernels.cpu import part_kernels
from ..kernels.native import blas, parts
from .chunks import Chunks as _Chunks  # noqa: F401  (the nopython loop; tests reach it here)
from .device_chunks import DeviceChunks
from .variance import DRAWS as VARIANCE_DRAWS, Tracker, check_args as check_variance_args
from .variance import check_resume as check_variance_resume

EVAL_SEED = 2 ** 40  # the held-out loss uses its own fixed draws, the same at every evaluation


def heldout_loss(prog, data, draws: int = 10, seed: int = EVAL_SEED) -> float:
    """The objective on `data` (fixed draws), always with hard samples. A model declared with
    m.latent / m.observe alone, trained on the ELBO: -prog.evaluate(data, "elbo", samples=draws),
    the negated ELBO of `draws` hard draws per row (a plated one: "lppd", the negated held-out
    log predictive density per row, `draws` draws of the global latents). Otherwise the mean of `draws` Monte-Carlo
    estimates of the trained objective; a program that relaxes discrete nodes (concrete,
    gumbel_softmax) is evaluated by its hard twin (Program.hard_twin), not by the relaxed
    surrogate it trains on."""
    from ..language import declare
    if prog.objective == "elbo" and declare.is_pure(prog.model):   # a plated one: its log predictive density
        return -prog.evaluate(data, "lppd" if getattr(prog.model, "plates", None) else "elbo", samples=draws,
                              seed=seed)
    p = prog.hard_twin()
    return float(np.mean([p.loss(data, seed=seed, step=k) for k in range(draws)]))


def _save_checkpoint(path: Path, prog, optimizer, step: int, hist: History, seed: int, first: int = 0) -> None:
    prog.pull()
    if not (np.all(np.isfinite(prog.theta)) and np.all(np.isfinite(prog.state))):
        raise ModelError(f"not writing checkpoint {path}: the parameters are not finite at step {step}")
    opt = {f"opt.{k}": v for k, v in optimizer.state().items()}
    checkpoint.write(path, prog, step=np.array(step, np.int64), seed=np.array(seed, np.int64),
                     first=np.array(first, np.int64), **hist.state(),
                     **opt)


FIT_FIELDS = ("step", "seed", "loss", "eval_steps", "eval")


def load_checkpoint(path, prog, optimizer=None, check=None) -> dict:
    """Restore parameters, estimator state and (if given) optimiser state; returns the raw fields.
    Everything is checked (and check(fields), when given, is called) before anything is
    assigned: on an error the program and the optimiser are unchanged."""
    path = Path(path)
    ck = checkpoint.read(path, prog, required=FIT_FIELDS if optimizer is not None else ())
    if optimizer is not None:
        st = {k[4:]: v for k, v in ck.items() if k.startswith("opt.")}
        kind = str(st.get("kind", optimizer.name))
        if kind != optimizer.name:
            raise ModelError(f"checkpoint {path} holds the state of optimiser '{kind}', not '{optimizer.name}'; "
                             f"resume with the same optimiser or start afresh (resume=False)")
        for k in optimizer._arrays():
            if k in st and (st[k].shape != prog.theta.shape or not np.all(np.isfinite(st[k]))):
                raise ModelError(f"checkpoint {path}: optimiser array '{k}' has shape {st[k].shape} or non-finite "
                                 f"values; this program needs {prog.theta.shape}")
        if "t" not in st:
            raise ModelError(f"checkpoint {path} holds no optimiser state (its step count opt.t is missing): it was not "
                             f"written by ppl.fit, or it is damaged; start afresh (resume=False)")
        if st["t"].shape != () or int(st["t"]) < 0:
            raise ModelError(f"checkpoint {path}: optimiser step count {st['t']!r} is not a count")
    if check is not None:
        check(ck)
    checkpoint.assign(prog, ck)
    prog.push()
    if optimizer is not None:
        optimizer.load_state(st)
    return ck


def fit(prog, data, optimizer, steps: int | None = None, epochs: int | None = None, batch_size: int = 32,
        seed: int | None = None, step: int | None = None, progress: bool = True, eval_every: int | None = None, eval_data=None, eval_fn=None,
        eval_draws: int = 10, checkpoint=None, checkpoint_every: int | None = None, resume: bool = False,
        ema: float = 0.98, nopython: bool | None = None, blas_threads: int | None = None,
        split_rows: bool | None = None, keep_losses: bool | None = None, remeasure=None,
        track_variance: int | None = None, variance_draws: int = VARIANCE_DRAWS) -> History:
    """Train `prog` in place; returns a History.

    data: {input name: (N, width) array}, or None for a model without inputs (then batch_size
    is the number of rows drawn per step). Give `steps` or `epochs` (of N // batch_size steps).
    seed, step: the batch and the noise of the run's k-th step are those of (seed, step + k).
    By default (neither given) seed is 0 and step is `prog.steps_trained`, the steps the program
    was trained so far: a second fit (a new phase, a smaller learning rate) continues with new
    batches and noise. Giving either starts where asked (step 0 unless given): the same
    arguments give the same run. The History counts the run's own steps from 0.
    eval_every: evaluate every so many steps (and at the end) with eval_fn(prog) -> float, or
    else the held-out objective on eval_data with hard samples (`heldout_loss`: a declared model's
    -ELBO by prog.evaluate, eval_draws fixed draws per row).
    checkpoint: a .npz path, written at every evaluation, every checkpoint_every steps and at
    the end; resume=True continues from it when it exists.
    ema: the decay of the training loss's exponential moving average (progress bar, History.ema
    and curve()); a resumed run needs the value its checkpoint was trained with.
    keep_losses: the History keeps every step's loss (History.loss; 8 bytes a step, in memory
    and in the checkpoint) when True; False: only the bounded record (History.curve(): at most
    2048 points of block mean / min / max / EMA, running statistics); None (default): every
    step when the run has at most KEEP_STEPS (100,000) steps, else the record only.
    nopython: run the steps between two evaluations / checkpoints / progress updates in one
    nopython call (kernels/cpu/train.py; CPU programs with ppl.optim's SGD, Momentum or Adam);
    False: one Python call per step; None (default): the nopython loop when it is compiled for
    this step's signature already or the run, with the program's earlier runs in the per-step
    loop, has >= 10,000 steps (its first compile, ~1 s, then pays). Both loops give the same parameters and losses bit for bit. On the CUDA target
    (ppl.optim's optimisers without clip_norm): None or True replays a training step captured as
    a CUDA graph (training/device_chunks.py), one wait for the device per chunk; False: one
    step at a time from Python.
    blas_threads: threads of the products' BLAS during the fit (restored after); None (default):
    when the user did not set OPENBLAS_NUM_THREADS, the BLAS at one thread and, where some of
    the model's work reaches two parts' grain (threads.parts_rule), ppl's own parts on every
    core Numba may use: each product of at least a million multiply-adds cut in slices of its
    output and Adam's update in ranges, run at once on Numba's threads (kernels/native/parts.py; at
    paper scale this beat the BLAS's own threads, BENCHMARKS.md); else the BLAS as it is. When
    fit chose more than one thread itself, it times its steps with them and on one thread as the
    run goes (after its first 0.1 s on one thread) and keeps the faster (ppl/training/threads.py; a
    busy machine can make every extra thread a loss);
    `History.threads` lists the decisions. A product cut in slices, or run on more than one
    BLAS thread, may round differently, so such a run is reproducible up to rounding: a fixed
    count, e.g. blas_threads=1, gives parameters that are the same bit for bit on every run and
    machine.
    split_rows: each batch split in two halves of rows trained at once on two of Numba's threads (kernels/cpu/
    train.py's train_chunk_rows: each half its own step, gradient and state, the noise drawn by global row as in
    one step), combined weighted by rows, in the nopython loop; the BLAS then runs at one thread (with
    blas_threads > 1 it is an error: two thread pools on the same cores). None (default): split when
    blas_threads is None or 1, the nopython loop runs, Numba and the machine have two threads or more, and the
    batch has >= SPLIT_MIN_BATCH (128) rows and no weight matrix exceeds SPLIT_MAX_WEIGHTS (256 x 256), or the
    batch evaluates >= SPLIT_MIN_ROWS (400) rows (its rows times the graph's rows per data row): there the
    step's elementwise work is more than its products' parts can spread (BENCHMARKS.md). The result equals the
    unsplit fit's to the rounding of that combination. An automatic split is timed against the whole batch in
    one step on one thread, as above, which draws the same noise; the two differ in the rounding of that
    combination, so such a run is reproducible up to rounding: split_rows=True or False gives the same bits.
    remeasure: under the measured choice (the default policy), the candidates are measured again as
    training moves, on the batch of the step then, and a node switches where another candidate now
    measures clearly better (beyond the tie margin of the one in force; its program compiled, the
    parameters and optimiser kept): None (default) at steps 100, 300, 900, ... of the run (the best
    estimator changes fastest early in training) while all its measurements cost at most
    REMEASURE_BUDGET (5%) of its training time; N: every N steps; False: never. Every measurement, the first one included, is in History.choices (step, node, from, to,
    the figures); explain() shows the last one's table. Not in a fit that splits its batches.
    track_variance: every N steps of the run, at its step 0 and its last, the gradient variance per layer of
    the model's parameters at the parameters then, over variance_draws estimates on the batch of the run's
    step 0 (the estimators' state as training has it, warmed as gradient_stats warms it), into
    History.variance (ppl/training/variance.py); the run trains the same bits as without. None: off.
    """
    size_plate(prog, data)
    plan = plan_fit(prog, data, optimizer, steps=steps, epochs=epochs, batch_size=batch_size, seed=seed, step=step,
                    eval_every=eval_every, eval_data=eval_data, eval_fn=eval_fn, eval_draws=eval_draws,
                    checkpoint=checkpoint, checkpoint_every=checkpoint_every, ema=ema, nopython=nopython,
                    blas_threads=blas_threads, split_rows=split_rows, keep_losses=keep_losses, remeasure=remeasure,
                    track_variance=track_variance, variance_draws=variance_draws)
    choice = _measured_choice(prog, plan, None if resume else optimizer)
    hist, start = plan.resume(prog, optimizer) if resume else (plan.history(), 0)
    hist.choices.extend(choice)
    return Trainer(plan, prog, optimizer, hist, start, progress).run()


def _queue_first_needs(prog, optimizer, hist) -> None:
    """Queue on the compile helper of a new step, if one runs, what the run needs at its first
    step (the optimiser's update, the loss record: ppl/compiler/ahead.py's functions(first=True))."""
    if getattr(prog, "target", "cpu") == "cpu" and compile_ahead.running():
        compile_ahead.functions([*optimizer.kernel_calls(prog.theta, prog.grad_buffer), hist.kernel_call()], first=True)


def _measured_choice(prog, plan, optimizer=None) -> list:
    """The measured choice a program compiled without pilot data waits for, made on the run's
    first batch (Program.choose); its record for History.choices (empty when none was pending).
    The optimiser's first needs are queued on a compile helper first: it takes them while the
    choice's programs compile here."""
    nodes = getattr(prog, "measure_pending", ())
    if not nodes:
        return []
    if optimizer is not None:
        _queue_first_needs(prog, optimizer, plan.history())
    before = {n.name: ch.estimator for n, (ch, _) in prog.choices.items()}
    prog.choose(*plan.batch(0), steps=plan.total)
    return choice_records(prog, 0, before, nodes)


REMEASURE_BUDGET = 0.05   # measuring the choice again costs at most this share of the run's training time
REMEASURE_FIRST, REMEASURE_GROWTH = 100, 3   # measured again at steps 100, 300, 900, ... of the run, while in budget
MEASURE_SEED = 1_000_003  # the measurements' noise: the run's seed plus this


@dataclass
class FitPlan:
    """What a fit will do, every argument checked and every automatic choice made (plan_fit)."""

    total: int                     # steps of the whole run
    batches: object                # data.Batches, or None for a model without inputs
    batch_size: int
    seed: int
    eval_fn: object                # prog -> float, or None
    eval_every: int | None
    checkpoint: Path | None
    checkpoint_every: int | None
    ema: float
    keep_losses: bool | None       # as asked (None: automatic)
    keep: bool                     # every step's loss kept
    nopython: bool | None          # the nopython loop: True, False, or None (when it pays)
    blas_threads: int | None       # during the fit, or None to leave the BLAS as it is
    split: bool                    # each batch's two halves at once on two threads
    parts: int = 1                 # ppl's own parts of the large products and updates (kernels/native/parts.py)
                                   # for a batch run whole (also a split fit's per-step loop, at large weights)
    first: int = 0                 # the noise and batch index of the run's first step (seed, step)
    choose: str | None = None      # fit's own parallel choice, timed against one thread as the run goes:
                                   # "parts" (ppl's parts) or "split" (the halves' threads); ppl/training/threads.py
    remeasure: object = None       # the measured choice measured again: None (within REMEASURE_BUDGET), every
                                   # so many steps, or False (never)
    track_variance: int | None = None   # the gradient variance measured every so many steps (variance.py)
    variance_draws: int = VARIANCE_DRAWS   # ... over so many draws

    def history(self) -> History:
        return History(ema_decay=self.ema, keep_losses=self.keep)

    def batch(self, t: int) -> tuple:
        """(data, batch) of the run's step t, as Program.grad / loss_parts take them: its rows of the
        data, or (None, the rows to draw) for a model without inputs."""
        if self.batches is None:
            return None, int(self.batch_size)
        idx = self.batches.rows(self.first + t, 1)
        return {k: a[idx] for k, a in self.batches.arrays.items()}, None

    def resume(self, prog, optimizer) -> tuple:
        """(History, first step): from the checkpoint when it exists, else a new run."""
        ckpt = self.checkpoint
        if ckpt is None or not ckpt.exists():
            return self.history(), 0
        got = {}

        def check(ck):   # before the checkpoint is assigned: the seed and the loss record
            if int(ck["seed"]) != self.seed:
                raise ModelError(f"fit: checkpoint {ckpt} was trained with seed={int(ck['seed'])}; resume with the "
                                 f"same seed (or resume=False to start afresh)")
            self.first = int(ck["first"]) if "first" in ck else 0   # the run it continues: its first step
            got["hist"] = History.from_state(
                ck, f"fit: checkpoint {ckpt}", ema_decay=self.ema,
                keep_losses=self.keep_losses if self.keep_losses is not None else (False if not self.keep else None))
            check_variance_resume(self, got["hist"])   # the record goes on with the same draws and batch
        saved = checkpoint.saved_estimators(ckpt)   # a measured choice that switched: its program again
        if saved is not None and getattr(prog, "measurement", None) is not None:
            now = {n.name: ch.estimator for n, (ch, _) in prog.choices.items()}
            m = prog.measurement
            picks = {n: e for n, e in saved.items() if e in (*m.measured.get(n, ()), *m.solos.get(n, ()))}
            if any(now.get(n) != e for n, e in picks.items()):
                prog._adopt(prog.measurement.program(picks))
        ck = load_checkpoint(ckpt, prog, optimizer, check=check)
        return got["hist"], int(ck["step"])


def plan_fit(prog, data, optimizer, steps=None, epochs=None, batch_size=32, seed=None, step=None, eval_every=None,
             eval_data=None, eval_fn=None, eval_draws=10, checkpoint=None, checkpoint_every=None, ema=0.98, nopython=None,
             blas_threads=None, split_rows=None, keep_losses=None, remeasure=None, track_variance=None,
             variance_draws=VARIANCE_DRAWS) -> FitPlan:
    """fit's arguments checked (a ModelError names the one that is wrong) and its automatic
    choices made: the BLAS threads, the parts, the row split, whether every loss is kept."""
    if (steps is None) == (epochs is None):
        raise ModelError("fit: give exactly one of steps=N or epochs=N")
    from . import optim
    if not isinstance(optimizer, optim.Optimizer):
        hint = (f" (ppl.optim.make({optimizer!r}, lr) makes one by name)" if isinstance(optimizer, str) else "")
        raise ModelError(f"fit: optimizer must be a ppl.optim optimiser such as ppl.optim.Adam(1e-3), got "
                         f"{optimizer!r}{hint}")
    first = (V.integer(step, "fit: step", lo=0) if step is not None else 0 if seed is not None
             else int(getattr(prog, "steps_trained", 0)))
    seed = V.seed(0 if seed is None else seed, "fit: seed")
    batch_size = V.integer(batch_size, "fit: batch_size", lo=1)
    steps = None if steps is None else V.integer(steps, "fit: steps", lo=1)
    epochs = None if epochs is None else V.integer(epochs, "fit: epochs", lo=1)
    eval_every = None if eval_every is None else V.integer(eval_every, "fit: eval_every", lo=1)
    checkpoint_every = None if checkpoint_every is None else V.integer(checkpoint_every, "fit: checkpoint_every", lo=1)
    eval_draws = V.integer(eval_draws, "fit: eval_draws", lo=1)
    threads = blas_threads_rule(prog, blas_threads)   # validates an explicit count
    split = split_rows_rule(prog, batch_size, split_rows, nopython, blas_threads)
    # a split of large weight matrices keeps its parts for a batch run whole (the per-step loop)
    n_parts = 1 if split and small_weights(prog) else parts_rule(prog, blas_threads, batch_size)
    if split and blas_threads is None:
        threads = 1 if blas.get_threads() is not None else None
    choose = None   # a parallel setting fit chose by itself is timed against one thread while it runs
    if split and split_rows is None:
        choose = "split"   # the parts where the per-step loop runs the batch whole (Trainer._chooser)
    elif n_parts > 1:
        choose = "parts"
    batches, per_epoch = None, 1
    if data is not None:
        if not isinstance(data, dict):
            names = prog.data_inputs
            if len(names) != 1:
                raise ModelError(f"fit: pass data as a dict {{name: array}} for the inputs {', '.join(names)}")
            data = {names[0]: data}
        batches = Batches(data, batch_size, seed=seed, dtype=prog.dtype)
        per_epoch = batches.per_epoch
    total = int(steps) if steps is not None else int(epochs) * per_epoch
    if eval_every is not None and eval_fn is None and eval_data is None:
        raise ModelError("fit: eval_every needs eval_data (held-out inputs) or eval_fn (a function of the program)")
    if eval_fn is None and eval_data is not None:
        def eval_fn(p):
            return heldout_loss(p, eval_data, eval_draws)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.suffix != ".npz":
        raise ModelError(f"fit: checkpoint must be a path ending in .npz, got {checkpoint}")
    if keep_losses is not None and not isinstance(keep_losses, (bool, np.bool_)):
        raise ModelError(f"fit: keep_losses must be True (every step's loss), False (the bounded record only) or "
                         f"None (every step up to {KEEP_STEPS:,} steps), got {keep_losses!r}")
    ema = V.real(ema, "fit: ema (the decay of the training loss's moving average)", lo=0.0, hi_open=1.0)
    keep = bool(keep_losses) if keep_losses is not None else total <= KEEP_STEPS
    if remeasure is not None and remeasure is not False:
        remeasure = V.integer(remeasure, "fit: remeasure (every so many steps; None: within a 5% budget; False: "
                                         "never)", lo=1)
    every, draws = check_variance_args(track_variance, variance_draws)
    return FitPlan(total, batches, batch_size, seed, eval_fn, eval_every, ckpt, checkpoint_every, ema, keep_losses,
                   keep, True if split_rows else nopython, threads, split, n_parts, first, choose, remeasure, every,
                   draws)


class PythonSteps:
    """The per-step runner: one step and one optimiser update from Python (the reference loop,
    and every fit's first step, which compiles the step the nopython loop then takes)."""

    def __init__(self, prog, optimizer, plan: FitPlan, write=None):
        self.prog, self.opt, self.plan = prog, optimizer, plan
        self.interpret = False   # the per-step loop runs the whole fit: its first steps may be interpreted
        self.useed = np.uint64(plan.seed)   # the step's seed argument, made once for the run
        self.write = write   # where a long compile's line goes (the progress bar's write)

    def run(self, t, n=1):
        """Train step t: ([its loss], None), or ([], (t, its ModelError or its non-finite loss))."""
        p, plan = self.prog, self.plan
        args = (p.batch_args(plan.batches, t) if plan.batches is not None
                else p.args(None, batch=int(plan.batch_size)))
        try:   # the per-step loop's first steps interpreted while that pays (runtime/first_steps.py)
            loss = float(first_steps.call(p, args, self.useed, np.int64(t), 1, self.write, self.interpret))
        except ModelError as e:   # the step's own check: a NaN / inf distribution parameter, named
            return [], (t, e)
        if not np.isfinite(loss) or not p.gradient_is_finite():
            return [], (t, loss)
        self.opt.step(p)
        return [loss], None


class Trainer:
    """A planned fit run from step `start`: the first step from Python, then chunks of steps in
    the nopython loop (_Chunks) or one step at a time; after each, the record, the evaluation,
    the checkpoint and the progress bar."""

    def __init__(self, plan: FitPlan, prog, optimizer, hist: History, start: int, progress: bool):
        self.plan, self.prog, self.opt, self.hist, self.start = plan, prog, optimizer, hist, start
        self.progress = progress
        self.trained_s = 0.0   # wall time in steps, the first one's compile included (not evaluations, checkpoints)
        self.measured = (start, 0.0)   # the step and the training time of the last measurement of the choice
        self.next_measure = start + REMEASURE_FIRST   # remeasure=None: the next step it may be measured again
        self.tracker = None   # the gradient variance along the run (fit's track_variance): variance.Tracker

    def run(self) -> History:
        plan, hist, start = self.plan, self.hist, self.start
        if plan.checkpoint is not None:
            plan.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        self.tracker = tracker = Tracker.make(plan, self.prog, hist)   # at the parameters the run starts from:
        before = tracker.start(start) if tracker is not None else 0.0    # before the steps' clock starts
        bar = None
        if self.progress and start < plan.total:
            from tqdm.auto import tqdm
            bar = tqdm(total=plan.total, initial=start, desc=self.prog.model.name, unit="step", file=sys.stderr,
                       dynamic_ncols=True, mininterval=0.25)
        t_first = time.perf_counter()
        _queue_first_needs(self.prog, self.opt, hist)   # a resumed run's first queue (the helper compiles each once)
        one = PythonSteps(self.prog, self.opt, plan, write=bar.write if bar is not None else None)
        if getattr(self.prog, "target", "cpu") == "cuda":   # a training step captured as a CUDA graph
            chunks = DeviceChunks.make(self.prog, self.opt, plan.batches, plan.batch_size, one, plan.nopython,
                                       plan.total - start)
        else:
            chunks = _Chunks.make(self.prog, self.opt, plan.batches, plan.batch_size, one.useed, plan.nopython,
                                  plan.total - start, plan.split)
        one.interpret = chunks is None   # (the nopython loop compiles the step itself)
        t_rest = None
        self.prev_threads = blas.set_threads(plan.blas_threads) if plan.blas_threads is not None else None
        # 1 unless fit chose them (not for a split's halves, nor beside a count the user gave)
        n_parts = 1 if chunks is not None and chunks.split else plan.parts
        prev_parts = part_kernels.use(n_parts, dtypes=(self.prog.dtype,))
        self.chooser, restore = self._chooser(chunks, n_parts)
        try:
            t = start
            while t < plan.total:
                t_chunk = time.perf_counter()
                if chunks is None or t == start:
                    losses, failed = one.run(plan.first + t)
                else:
                    n = chunks.length(t, plan.total, (plan.eval_every if plan.eval_fn is not None else None),
                                      plan.checkpoint_every)
                    if self.chooser is not None:
                        n = self.chooser.steps_cap(n)
                    if tracker is not None:
                        n = tracker.cap(t, n)
                    if t == start + 1:   # the loop's first call compiles it for a new step: said when long
                        with compiling(chunks.what, write=one.write, note=chunks.note):
                            losses, failed = chunks.run(plan.first + t, n)
                    else:
                        losses, failed = chunks.run(plan.first + t, n)
                if failed is not None:   # the steps before the failing one count as trained
                    hist.append(losses)
                    t += len(losses)
                    self._fail(failed[0] - plan.first, failed[1])
                dt = time.perf_counter() - t_chunk
                self.trained_s += dt
                hist.append(losses)
                if t == start:
                    hist.first_step_seconds = time.perf_counter() - t_first
                    t_rest = time.perf_counter()
                elif self.chooser is not None and len(losses):
                    self.chooser.record(len(losses), dt)
                t += len(losses)
                self._after(t, bar, len(losses))
                if self._remeasure_due(t, chunks):
                    chunks = self._remeasure(t, chunks, one)
        finally:
            self.prog.steps_trained = plan.first + t
            if bar is not None:
                bar.close()
            if self.prev_threads is not None:
                blas.set_threads(self.prev_threads)
            parts.set_parts(prev_parts)
            if restore is not None:
                restore()
            if self.chooser is not None:
                hist.threads = list(self.chooser.log)
        spent = tracker.seconds if tracker is not None else 0.0
        hist.variance_seconds += spent
        if t_rest is not None:   # the measurements during the steps are no steps' time
            hist.seconds = time.perf_counter() - t_rest - (spent - before)
        return hist

    def _chooser(self, chunks, n_parts):
        """(ThreadChooser, restore) for a parallel setting fit chose by itself (plan.choose), else
        (None, None): the setting is timed against one thread while the run goes on. A split
        fit's one-thread setting is the whole batch in one step (faster than the halves in turn);
        a split fit in the per-step loop runs the batch whole, in n_parts parts where it has them."""
        plan = self.plan
        halves = chunks is not None and chunks.split
        if plan.choose == "parts" or (plan.choose == "split" and not halves and n_parts > 1):
            n = int(n_parts)
            dtype = self.prog.dtype
            ch = ThreadChooser([(f"{n} parts at once", lambda: parts.set_parts(n)),
                                ("one thread", lambda: parts.set_parts(1))],
                               first_parallel=lambda: part_kernels.calibrate(dtype) > 0)
            ch.apply()
            return ch, None
        if plan.choose == "split" and halves:
            import numba
            prev = numba.get_num_threads()

            def halves():
                numba.set_num_threads(2)
                chunks.set_whole(False)

            ch = ThreadChooser([("the halves at once", halves),
                                ("the whole batch on one thread", lambda: chunks.set_whole(True))])
            ch.apply()
            return ch, lambda: numba.set_num_threads(prev)
        return None, None

    def _remeasure_due(self, t, chunks) -> bool:
        """Whether the measured choice is measured again after step t (FitPlan.remeasure). By default
        at steps REMEASURE_FIRST, then REMEASURE_GROWTH times as many (the best estimator changes
        fastest early in training), each time only while every measurement of the run so far and
        this one (the last one's cost) stay within REMEASURE_BUDGET of the run's training time,
        projected from its steps so far (with a fifth of it kept in reserve)."""
        plan, m = self.plan, getattr(self.prog, "measurement", None)
        if m is None or plan.remeasure is False or t >= plan.total or (chunks is not None and chunks.split):
            return False
        if plan.remeasure is not None:
            return t - self.measured[0] >= plan.remeasure
        if t < self.next_measure:
            return False
        self.next_measure = max(t + 1, (t - self.start) * REMEASURE_GROWTH + self.start)
        projected = self.trained_s / max(t - self.start, 1) * (plan.total - self.start)
        return self.hist.measure_seconds + m.seconds <= 0.8 * REMEASURE_BUDGET * projected

    def _remeasure(self, t, chunks, one):
        """Measure the choice again on step t's batch (Program.remeasure); where a node switched, the
        nopython loop is made again for the new step. Returns the loop."""
        plan, p = self.plan, self.prog
        data, batch = plan.batch(t)
        t0 = time.perf_counter()
        records = p.remeasure(data, batch, seed=plan.seed + MEASURE_SEED, step=plan.first + t, steps=plan.total - t)
        for r in records:
            r["step"] = t
        self.hist.choices.extend(records)
        self.measured = (t, self.trained_s)
        if chunks is not None and any(r["from"] != r["to"] for r in records):
            with compiling(chunks.what, write=one.write, note=chunks.note):
                chunks = _Chunks.make(p, self.opt, plan.batches, plan.batch_size, one.useed, True, plan.total - t,
                                      plan.split)
        self.hist.measure_seconds += time.perf_counter() - t0
        return chunks

    def _fail(self, step, err):
        ckpt = self.plan.checkpoint
        last_good = f"; the last good checkpoint is {ckpt}" if ckpt is not None and ckpt.exists() else ""
        if isinstance(err, ModelError):
            raise ModelError(f"fit: a value became non-finite at step {step}: {err}{last_good}") from None
        costs = self._nonfinite_costs(step)
        which = f"; non-finite on that batch: {', '.join(costs)}" if costs else ""
        advice = ("it is the first step, before any update: check the data and the initial parameters (not the "
                  "learning rate)" if step == 0 else "lower the learning rate or check the data")
        raise ModelError(f"fit: the loss or its gradient became non-finite at step {step} (loss {err}{which}); "
                         f"{advice}{last_good}")

    def _nonfinite_costs(self, step) -> list:
        """The costs whose value on step `step`'s batch and draw is not finite (prog.loss_parts)."""
        plan, p = self.plan, self.prog
        try:
            data, batch = plan.batch(step)
            parts = p.loss_parts(data, seed=plan.seed, step=plan.first + step, batch=batch)
        except ModelError:
            return []
        return [k for k, v in parts.items() if not np.isfinite(v)]

    def _after(self, done, bar, n):
        """After the steps up to `done`: the gradient variance, the evaluation, the checkpoint and the
        progress bar when due."""
        plan, hist = self.plan, self.hist
        if self.tracker is not None and self.tracker.due(done):   # before the checkpoint, which holds it
            self.tracker.run(done)
        evaluate = plan.eval_fn is not None and plan.eval_every is not None and (done % plan.eval_every == 0
                                                                                 or done == plan.total)
        if evaluate:
            hist.eval_steps.append(done)
            if self.prev_threads is not None:   # the rule held for the training batch, not the evaluation's
                blas.set_threads(self.prev_threads)
            hist.eval.append(float(plan.eval_fn(self.prog)))
            if self.prev_threads is not None:
                blas.set_threads(plan.blas_threads)
            if self.chooser is not None:
                self.chooser.apply()
            hist.eval_seconds.append(self.trained_s)
            hist.eval_train.append(hist.ema)
        if plan.checkpoint is not None and (evaluate or done == plan.total
                                            or (plan.checkpoint_every and done % plan.checkpoint_every == 0)):
            _save_checkpoint(plan.checkpoint, self.prog, self.opt, done, hist, plan.seed, plan.first)
        if bar is not None:
            post = {"loss": f"{hist.ema:.4g}"}
            if hist.eval:
                post["heldout"] = f"{hist.eval[-1]:.4g}"
            bar.set_postfix(post, refresh=False)
            bar.update(n)
