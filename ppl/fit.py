"""The training loop: minibatches, one fused gradient step and an in-place optimiser update per
step, a progress bar, held-out evaluation, atomic checkpoints and resume.

    from ppl.fit import fit
    hist = fit(prog, {"x": train_x}, ppl.optim.Adam(1e-3), steps=3000, batch_size=32,
               eval_every=500, eval_data={"x": test_x}, checkpoint="run/ckpt.npz")

The batch of step t and the random draw of step t depend only on (seed, t), so a resumed run
continues exactly as the uninterrupted one would have. A checkpoint holds the parameters,
the estimator state, the optimiser state, the step and the loss history; it is written to a
temporary file, read back and checked, then renamed over the old one, so a crash or a
diverged run never leaves a broken checkpoint behind.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint
from . import validate as V
from .data import Batches
from .dsl import ModelError

EVAL_SEED = 2 ** 40  # the held-out loss uses its own fixed draws, the same at every evaluation


@dataclass
class History:
    """What a run did: per-step training loss, held-out evaluations, timings."""

    loss: list = field(default_factory=list)         # training loss of every step (minibatch estimate)
    eval_steps: list = field(default_factory=list)
    eval: list = field(default_factory=list)          # held-out objective (or eval_fn's value) at eval_steps
    first_step_seconds: float = 0.0                    # includes loading / JIT-compiling the step
    seconds: float = 0.0                               # wall time of the later steps
    start_step: int = 0                                # > 0 when resumed

    @property
    def steps(self) -> int:
        return len(self.loss)

    @property
    def step_time(self) -> float:
        """Mean seconds per step after the first (the first includes compilation)."""
        n = self.steps - self.start_step - 1
        return self.seconds / n if n > 0 else float("nan")

    def smoothed(self, decay: float = 0.98) -> np.ndarray:
        """Bias-corrected exponential moving average of the training loss."""
        out, m = np.empty(len(self.loss)), 0.0
        for i, v in enumerate(self.loss):
            m = decay * m + (1 - decay) * v
            out[i] = m / (1 - decay ** (i + 1))
        return out


def heldout_loss(prog, data, draws: int = 10, seed: int = EVAL_SEED) -> float:
    """Mean of `draws` Monte-Carlo estimates of the objective on `data` (fixed draws)."""
    return float(np.mean([prog.loss(data, seed=seed, step=k) for k in range(draws)]))


def _save_checkpoint(path: Path, prog, optimizer, step: int, hist: History, seed: int) -> None:
    prog.pull()
    if not (np.all(np.isfinite(prog.theta)) and np.all(np.isfinite(prog.state))):
        raise ModelError(f"not writing checkpoint {path}: the parameters are not finite at step {step}")
    opt = {f"opt.{k}": v for k, v in optimizer.state().items()}
    checkpoint.write(path, prog, step=np.array(step, np.int64), seed=np.array(seed, np.int64),
                     loss=np.array(hist.loss, np.float64), eval_steps=np.array(hist.eval_steps, np.int64),
                     eval=np.array(hist.eval, np.float64), **opt)


FIT_FIELDS = ("step", "seed", "loss", "eval_steps", "eval")


def load_checkpoint(path, prog, optimizer=None) -> dict:
    """Restore parameters, estimator state and (if given) optimiser state; returns the raw fields.
    Everything is checked before anything is assigned: on an error the program and the optimiser
    are unchanged."""
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
        if "t" in st and (st["t"].shape != () or int(st["t"]) < 0):
            raise ModelError(f"checkpoint {path}: optimiser step count {st['t']!r} is not a count")
    checkpoint.assign(prog, ck)
    prog.push()
    if optimizer is not None:
        optimizer.load_state(st)
    return ck


def fit(prog, data, optimizer, steps: int | None = None, epochs: int | None = None, batch_size: int = 32,
        seed: int = 0, progress: bool = True, eval_every: int | None = None, eval_data=None, eval_fn=None,
        eval_draws: int = 10, checkpoint=None, checkpoint_every: int | None = None, resume: bool = False,
        ema: float = 0.98) -> History:
    """Train `prog` in place; returns a History.

    data: {input name: (N, width) array}, or None for a model without inputs (then batch_size
    is the number of rows drawn per step). Give `steps` or `epochs` (of N // batch_size steps).
    eval_every: evaluate every so many steps (and at the end) with eval_fn(prog) -> float, or
    else the held-out objective on eval_data (mean of eval_draws fixed draws).
    checkpoint: a .npz path, written at every evaluation, every checkpoint_every steps and at
    the end; resume=True continues from it when it exists.
    """
    if (steps is None) == (epochs is None):
        raise ModelError("fit: give exactly one of steps=N or epochs=N")
    seed = V.seed(seed, "fit: seed")
    batch_size = V.integer(batch_size, "fit: batch_size", lo=1)
    steps = None if steps is None else V.integer(steps, "fit: steps", lo=1)
    epochs = None if epochs is None else V.integer(epochs, "fit: epochs", lo=1)
    eval_every = None if eval_every is None else V.integer(eval_every, "fit: eval_every", lo=1)
    checkpoint_every = None if checkpoint_every is None else V.integer(checkpoint_every, "fit: checkpoint_every", lo=1)
    eval_draws = V.integer(eval_draws, "fit: eval_draws", lo=1)
    if data is None:
        if int(batch_size) < 1:
            raise ModelError(f"fit: batch_size must be >= 1, got {batch_size}")
        batches = None
        per_epoch = 1
    else:
        if not isinstance(data, dict):
            names = prog.layout.inputs
            if len(names) != 1:
                raise ModelError(f"fit: pass data as a dict {{name: array}} for the inputs {', '.join(names)}")
            data = {names[0]: data}
        batches = Batches(data, batch_size, seed=seed, dtype=prog.dtype)
        per_epoch = batches.per_epoch
    total = int(steps) if steps is not None else int(epochs) * per_epoch
    if total < 1:
        raise ModelError(f"fit: steps must be >= 1 (got steps={steps}, epochs={epochs})")
    if eval_every is not None and int(eval_every) < 1:
        raise ModelError(f"fit: eval_every must be >= 1 or None, got {eval_every}")
    if eval_every is not None and eval_fn is None and eval_data is None:
        raise ModelError("fit: eval_every needs eval_data (held-out inputs) or eval_fn (a function of the program)")
    if eval_fn is None and eval_data is not None:
        def eval_fn(p):
            return heldout_loss(p, eval_data, eval_draws)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.suffix != ".npz":
        raise ModelError(f"fit: checkpoint must be a path ending in .npz, got {checkpoint}")

    hist, start = History(), 0
    if resume and ckpt is not None and ckpt.exists():
        ck = load_checkpoint(ckpt, prog, optimizer)
        start = int(ck["step"])
        if int(ck["seed"]) != int(seed):
            raise ModelError(f"fit: checkpoint {ckpt} was trained with seed={int(ck['seed'])}; resume with the "
                             f"same seed (or resume=False to start afresh)")
        hist.loss = list(ck["loss"])
        hist.eval_steps, hist.eval = list(ck["eval_steps"]), list(ck["eval"])
        hist.start_step = start
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)

    bar = None
    if progress and start < total:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=start, desc=prog.model.name, unit="step", file=sys.stderr,
                   dynamic_ncols=True, mininterval=0.25)
    m = 0.0
    for i, v in enumerate(hist.loss[-200:]):
        m = ema * m + (1 - ema) * v
    n_ema = min(len(hist.loss), 200)
    entry, useed = prog.entry, np.uint64(seed)
    t_first = time.perf_counter()
    t_rest = None
    try:
        for t in range(start, total):
            args = prog.args(batches(t) if batches is not None else None,
                             batch=None if batches is not None else int(batch_size))
            last_good = (f"; the last good checkpoint is {ckpt}" if ckpt is not None and ckpt.exists() else "")
            try:
                loss = float(entry(*args, useed, np.int64(t), 1))
            except ModelError as e:   # the step's own check: a NaN / inf distribution parameter, named
                raise ModelError(f"fit: a value became non-finite at step {t}: {e}{last_good}") from None
            if not np.isfinite(loss) or not prog.gradient_is_finite():
                raise ModelError(f"fit: the loss or its gradient became non-finite at step {t} (loss {loss}); "
                                 f"lower the learning rate or check the data{last_good}")
            optimizer.step(prog)
            hist.loss.append(loss)
            if t == start:
                hist.first_step_seconds = time.perf_counter() - t_first
                t_rest = time.perf_counter()
            m, n_ema = ema * m + (1 - ema) * loss, n_ema + 1
            done = t + 1
            evaluate = eval_fn is not None and eval_every is not None and (done % int(eval_every) == 0
                                                                            or done == total)
            if evaluate:
                hist.eval_steps.append(done)
                hist.eval.append(float(eval_fn(prog)))
            if ckpt is not None and (evaluate or done == total
                                     or (checkpoint_every and done % int(checkpoint_every) == 0)):
                _save_checkpoint(ckpt, prog, optimizer, done, hist, seed)
            if bar is not None:
                post = {"loss": f"{m / (1 - ema ** n_ema):.4g}"}
                if hist.eval:
                    post["heldout"] = f"{hist.eval[-1]:.4g}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if t_rest is not None:
        hist.seconds = time.perf_counter() - t_rest
    return hist
