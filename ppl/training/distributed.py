"""Beyond one machine with Dask: estimator sweeps, sharded Monte-Carlo moments of the gradient,
data-parallel training.

    pip install 'numba-ppl[distributed]'    # dask[distributed]; imported only when used

    from ppl.training.distributed import sweep, moments, fit_data_parallel
    res = sweep("sbn", ["disarm", "score"], seeds=4, workers=2)    # a LocalCluster of 2 processes
    print(res.table()); res.to_csv("sweep.csv")
    m = moments(prog, {"x": batch}, draws=10**6, scheduler="tcp://HOST:8786")
    hist = fit_data_parallel(prog, {"x": X}, ppl.optim.Adam(1e-3), steps=1000, batch_size=4096, workers=2)

Where tasks run: `client=` any `dask.distributed.Client` you made (SLURM / PBS through
dask-jobqueue: `Client(SLURMCluster(...))`), else `scheduler="tcp://HOST:PORT"` (a running
scheduler), else `workers=N` (a LocalCluster of N single-threaded worker processes, closed
afterwards), else nothing: the same tasks run here, one after another. The results do not depend
on where they ran: a sweep's rows equal the serial run's (each run trains with one BLAS thread);
`moments` addresses every gradient draw by its global index (seed, draw) and merges the shards'
running statistics in shard order, so any cluster gives the serial answer bit for bit at the same
`draws_per_task` (its default depends on the workers: give it to compare runs across clusters); and
`fit_data_parallel` gives each worker a shard of the global batch whose noise is addressed by
the global row (the generated `step_rows`), so it trains as `fit` does, to rounding.

Task sizes: the scheduler spends about a millisecond per task and a worker compiles each model
once (the generated step is cached on disk, PPL_CACHE_DIR, shared by the workers of a machine),
so a task holds a whole training run (sweep) or `draws_per_task` gradient draws (moments; by
default enough for ~8 tasks per worker); a data-parallel step is one task per worker and pays
only where a shard's gradient costs well above the round trip (a few ms): large batches. Faults: a task whose run raises becomes a row with its
settings and the error, the others complete; a worker that dies has its tasks rerun elsewhere
by the scheduler, each result kept once.

What travels to the workers: models (a `ppl.Model` pickles), numbers and arrays, and `build` /
`evaluate` callables, which must be importable there or pickle by value: a Numba function defined
in `__main__` does not (dask/distributed#4597); move it to a module.
"""
from __future__ import annotations

import hashlib
import itertools
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dsl import ModelError
from ..kernels.cpu.train import combine_by_rows
from ..compiler.options import CompileOptions
from .runs import (RUN_DEFAULTS, TRAIN_KEYS, SweepResult, compile_run, gradient_variance,  # noqa: F401 (ppl.distributed's)
                   final_bounds, settings_grid, settings_label)



# --------------------------------------------------------------------------- the cluster
def _dask():
    try:
        import dask.distributed as dd
    except ImportError:
        raise ModelError("ppl.distributed needs Dask: pip install 'numba-ppl[distributed]' "
                         "(or pass no client / workers / scheduler to run here)") from None
    return dd


def open_client(client=None, workers: int | None = None, scheduler: str | None = None):
    """(client or None, close): the client to run on and how to release what was started here.
    None: run in this process (no client, workers or scheduler given)."""
    if client is not None:
        return client, lambda: None
    if scheduler is not None:
        c = _dask().Client(scheduler)
        return c, c.close
    if workers is None:
        return None, lambda: None
    if int(workers) < 1:
        raise ModelError(f"workers must be >= 1, got {workers}")
    dd = _dask()
    cluster = dd.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                              dashboard_address=":0")   # any free port: never clash with another cluster
    c = dd.Client(cluster)

    def close():
        c.close()
        cluster.close()
    return c, close


def _scatter(client, value, broadcast=True):
    """A future of `value` on the workers under a fresh key: scattered alone in a list (Dask
    scatters a dict's values under the dict's own keys, so two calls' {"x": ...} would share,
    and release, one key), never by content hash (two equal values must not share a key
    either)."""
    return client.scatter([value], broadcast=broadcast, hash=False)[0]


def _run_all(fn, tasks, client, progress, desc, **kwargs):
    """[fn(task, **kwargs) for task in tasks], on the client's workers when there is one; results
    in task order whatever order they finish in."""
    from tqdm import tqdm
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, leave=False)
    try:
        if client is None:
            out = []
            for t in tasks:
                out.append(fn(t, **kwargs))
                bar.update()
            return out
        dd = _dask()
        big = {k: _scatter(client, v) for k, v in kwargs.items() if v is not None}
        small = {k: v for k, v in kwargs.items() if v is None}
        futures = client.map(fn, tasks, pure=False, **big, **small)
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(tasks)
        for f in dd.as_completed(futures):
            out[index[f.key]] = f.result()
            bar.update()
        return out
    finally:
        bar.close()


def _check_picklable(what: str, obj):
    import cloudpickle
    try:
        cloudpickle.dumps(obj)
    except Exception as e:  # noqa: BLE001 - any pickling failure is reported the same way
        raise ModelError(f"{what} cannot be sent to the workers ({type(e).__name__}: {e}); define it, and the "
                         f"Numba functions it uses, in an importable module, not in __main__") from None


# --------------------------------------------------------------------------- sweeps
def sweep(build, estimators, seeds, settings=None, client=None, *, workers=None, scheduler=None, data=None,
          evaluate=None, grad_draws: int = 0, progress: bool = True, eval_points: int = 0,
          keep_params: bool = False, iwae_k: int = 0, track_variance: int | None = None) -> SweepResult:
    """Train every (settings, estimator, seed) and gather one row each (see SweepResult).

    build: a ready model's name ("sbn": its defaults, data and metrics) or a callable
        build(**model_options) -> ppl.Model, with `data` {"train": {input: array}, "test": ...}
        and optionally evaluate(prog, data) -> {metric: value} (default: the held-out loss on
        data["test"]).
    estimators: estimator specs (as `ppl train --estimator` or compile(estimators=) takes them).
    seeds: a count (0 .. N-1) or a list; a run's seed sets its initialisation, noise and batches.
    settings: dicts of model options and training settings (steps, batch, lr, optimizer,
        samples, dtype, policy, objective): one dict, a list, or a dict of lists (the grid).
    grad_draws: > 0 also measures the gradient variance at initialisation over so many draws.
    eval_points: > 0 also evaluates the headline metric every steps / eval_points steps and at the
        end (its row's 'eval' at 'eval_steps', after 'eval_seconds' of training).
    keep_params: each row's 'params' holds the run's fitted parameters and estimator state, the
        bytes of the .npz file Program.save writes (Program.load reads them from a file).
    iwae_k: > 0 also gives each row 'test_iwae' (the held-out IWAE bound of iwae_k draws) and
        'train_elbo' (the training rows' ELBO), None where the model has no bound
        (runs.final_bounds); every row has 'train_loss_ema', the training loss's EMA at the end.
    track_variance: fit's track_variance (the gradient variance along training), passed through.
    client / workers / scheduler: where to run (module docstring); none of them: here.
    """
    if isinstance(build, str):
        from ..models import get
        mod = get(build)
        headline = mod.HEADLINE
    else:
        if not callable(build):
            raise ModelError(f"sweep: build must be a ready model's name or a callable returning a ppl.Model, "
                             f"got {type(build).__name__}")
        if data is None or "train" not in data:
            raise ModelError("sweep: with a build callable, give data={'train': {input: array}, 'test': ...}")
        headline = None if evaluate is not None else "heldout_loss"
    seeds = list(range(int(seeds))) if np.isscalar(seeds) else [int(s) for s in seeds]
    if not seeds:
        raise ModelError("sweep: seeds is empty; give a count >= 1 or a list of seeds")
    if isinstance(estimators, str):
        estimators = [estimators]
    if not estimators:
        raise ModelError("sweep: estimators is empty; list names such as ['score', 'disarm']")
    grid = settings_grid(settings)
    tasks = [dict(build=build, estimator=e, seed=s, settings=st, grad_draws=int(grad_draws), evaluate=evaluate,
                  eval_points=int(eval_points), headline=headline, keep_params=bool(keep_params),
                  iwae_k=int(iwae_k), track_variance=track_variance)
             for st in grid for e in estimators for s in seeds]
    client, close = open_client(client, workers, scheduler)
    try:
        if client is not None and not isinstance(build, str):
            _check_picklable("sweep: build", build)
            _check_picklable("sweep: evaluate", evaluate)
        rows = _run_all(run_task, tasks, client, progress, "sweep", data=data)
    finally:
        close()
    res = SweepResult(rows)
    res.headline = headline or next((k for r in rows if r["error"] is None for k in r["metrics"]), None)
    for r in res:
        r.update(r.pop("metrics"))
    return res


def run_task(task: dict, data=None) -> dict:
    """One run of a sweep (here or on a worker): its row; an exception becomes the row's 'error'."""
    row = dict(settings=settings_label(task["settings"]), estimator=str(task["estimator"]), seed=task["seed"],
               metrics={}, grad_variance=None, us_per_step=None, curve=None, curve_steps=None, eval_steps=None,
               eval=None, eval_seconds=None, error=None)
    try:
        row.update(_train(task, data))
    except Exception as e:  # noqa: BLE001 - a failed run is reported in its row; the sweep goes on
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def _train(task, data):
    from .fit import fit, heldout_loss, size_plate
    from .optim import make
    build, settings = task["build"], task["settings"]
    if isinstance(build, str):
        from ..models import get
        mod = get(build)
        D = {**RUN_DEFAULTS, **mod.DEFAULTS}
        build_fn, data, evaluate = mod.build, mod.data(seed=0), mod.evaluate
    else:
        D, build_fn, evaluate = dict(RUN_DEFAULTS), build, task["evaluate"]
    D.update({k: v for k, v in settings.items() if k in TRAIN_KEYS})
    model = build_fn(**{k: v for k, v in settings.items() if k not in TRAIN_KEYS})
    prog = compile_run(model, D, task["seed"], task["estimator"])
    train, batch = data["train"], int(D["batch"])
    size_plate(prog, train)   # an unsized plate: the training rows (fit would set it after the variance)
    out = {}
    if task["grad_draws"]:
        gdata = None if train is None else {k: v[:batch] for k, v in train.items()}
        out["grad_variance"] = gradient_variance(prog, gdata, batch, draws=task["grad_draws"])
    def metrics():
        if evaluate is not None:
            return {k: float(v) for k, v in evaluate(prog, data).items()}
        return {"heldout_loss": heldout_loss(prog, data["test"])}
    points, steps = int(task.get("eval_points", 0)), int(D["steps"])
    head = task.get("headline")   # None: evaluate's first metric (a sweep's headline)

    def eval_fn(p):   # the table's number, during training
        m = metrics()
        return float(m[head] if head is not None else next(iter(m.values()), float("nan")))
    hist = fit(prog, train, make(D["optimizer"], float(D["lr"])), steps=steps, batch_size=batch,
               seed=task["seed"], progress=False, blas_threads=1, eval_fn=eval_fn if points else None,
               eval_every=max(1, steps // points) if points else None,
               **({"track_variance": task["track_variance"]} if task.get("track_variance") else {}))
    if task.get("track_variance"):   # History.variance: the gradient variance per layer along the run
        out["variance"] = hist.variance
    out["metrics"] = metrics()
    out.update(final_bounds(prog, data, task.get("iwae_k", 0), out["metrics"], hist))
    if task.get("keep_params"):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            prog.save(Path(tmp) / "params.npz")
            out["params"] = (Path(tmp) / "params.npz").read_bytes()
    out["eval_steps"], out["eval"], out["eval_seconds"] = hist.eval_steps, hist.eval, hist.eval_seconds
    out["us_per_step"] = 1e6 * hist.step_time
    curve = hist.smoothed()
    out["curve"] = curve.tolist()   # at every step, or at the points of the bounded record (long runs)
    out["curve_steps"] = (np.arange(1, curve.shape[0] + 1) if curve.shape[0] == hist.steps
                          else hist.curve()["step"]).tolist()
    return out


# --------------------------------------------------------------------------- gradient moments
def _as_program(obj, compile_options: dict):
    """A compiled program from a program, a Model, or a builder (a callable of no arguments
    returning either); compile options only where something is compiled here."""
    from ..dsl import Model
    from ..runtime.program import Program
    if callable(obj) and not isinstance(obj, (Model, Program)):
        obj = obj()
    if isinstance(obj, Model):
        return obj.compile(**compile_options)
    if not isinstance(obj, Program):
        raise ModelError(f"moments: give a compiled program, a ppl.Model or a function returning one, got "
                         f"{type(obj).__name__}")
    if compile_options:
        raise ModelError(f"moments: compile_options {sorted(compile_options)} are for a Model or a builder; "
                         f"this program is compiled already (compile it with them instead)")
    return obj


@dataclass
class Moments:
    """Running mean and variance of the gradient of the model parameters (float64): n draws,
    mean and m2 (sum of squared deviations) flat over `names` (each parameter ravelled, in order)."""
    n: int
    mean: np.ndarray
    m2: np.ndarray
    names: tuple
    shapes: tuple

    @property
    def var(self) -> np.ndarray:
        """Unbiased per-entry variance (ddof = 1)."""
        return self.m2 / max(self.n - 1, 1)

    def merge(self, other: "Moments") -> "Moments":
        """Chan, Golub & LeVeque's pairwise update: the moments of both sets of draws."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        d = other.mean - self.mean
        mean = self.mean + d * (other.n / n)
        m2 = self.m2 + other.m2 + d * d * (self.n * other.n / n)
        return Moments(n, mean, m2, self.names, self.shapes)

    def by_param(self, what: str = "mean") -> dict:
        """{parameter name: array of its shape} of `mean` or `var`."""
        flat, out, off = getattr(self, what), {}, 0
        for k, s in zip(self.names, self.shapes):
            size = int(np.prod(s))
            out[k] = flat[off: off + size].reshape(s)
            off += size
        return out


def recipe(prog) -> dict:
    """What rebuilds `prog` elsewhere: its model, its compile options (every node's estimator and
    options, dtype, samples, objective and lowering), and its current parameters and estimator
    state."""
    prog.pull()
    options = CompileOptions(
        estimators={n.name: (ch.estimator, dict(ch.options)) for n, (ch, _) in prog.choices.items()},
        dtype=prog.dtype, samples=prog.samples, objective=prog.objective,
        lowering="row-fused" if prog.layout.lowering.startswith("row-fused") else "arrays")
    return dict(model=prog.model, options=options, theta=prog.theta.copy(), state=prog.state.copy())


_PROGRAMS = {}   # per process: recipe digest -> compiled program (a worker compiles a model once)


def _program(rec):
    spec = {k: v for k, v in rec.items() if k not in ("theta", "state")}
    key = hashlib.sha256(pickle.dumps(spec)).hexdigest()
    prog = _PROGRAMS.get(key)
    if prog is None:
        prog = _PROGRAMS[key] = rec["model"].compile_with(rec["options"])
    prog.theta[:] = rec["theta"]
    prog.state[:] = rec["state"]
    return prog


def moments_shard(task: dict, rec=None, data=None) -> Moments:
    """Moments of draws [start, stop) (here or on a worker): draw d is the gradient at
    (seed, step=d), the estimator state reset before each draw (running baselines must not learn
    from the measurement); Welford's running update in float64."""
    prog = _program(rec)
    names = tuple(prog.model_param_names())
    shapes = tuple(prog.params[k].shape for k in names)
    size = sum(int(np.prod(s)) for s in shapes)
    mean, m2, n = np.zeros(size), np.zeros(size), 0
    state = rec["state"]
    for d in range(task["start"], task["stop"]):
        prog.state[:] = state
        _, g = prog.grad(data, seed=task["seed"], step=d, batch=task["batch"])
        x = np.concatenate([g[k].ravel() for k in names]).astype(np.float64)
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    return Moments(n, mean, m2, names, shapes)


def moments(prog, data, draws: int, client=None, *, workers=None, scheduler=None, seed: int = 0,
            draws_per_task: int | None = None, batch: int | None = None, progress: bool = True,
            compile_options: dict | None = None) -> Moments:
    """Mean and variance of `prog`'s gradient (model parameters) over `draws` draws at its current
    parameters on `data` (a batch {input: array}; or None with batch=rows for a model without
    inputs), sharded over the workers. Draw d is addressed by (seed, d), and the shards' moments
    are merged in shard order, so the answer equals the serial one bit for bit, wherever it ran,
    at the same draws_per_task (by default draws / (8 x workers): give it to compare clusters).
    CUDA programs are measured with their CPU twin.
    prog: a compiled program, or a `ppl.Model` or a function of no arguments returning one (a
    builder), compiled here with `compile_options` ({"estimators": ..., "samples": ..., "seed": ...};
    `seed` above addresses the draws, not the initialisation)."""
    prog = _as_program(prog, compile_options or {})
    draws = int(draws)
    if draws < 2:
        raise ModelError(f"moments: draws must be >= 2 (a variance needs two), got {draws}")
    client, close = open_client(client, workers, scheduler)
    try:
        n_workers = len(client.scheduler_info()["workers"]) if client is not None else 1
        per = int(draws_per_task or max(1, -(-draws // (8 * n_workers))))
        if per < 1:
            raise ModelError(f"moments: draws_per_task must be >= 1, got {draws_per_task}")
        tasks = [dict(start=a, stop=min(a + per, draws), seed=int(seed), batch=batch) for a in range(0, draws, per)]
        rec = recipe(prog)
        if client is not None:
            _check_picklable("moments: the program's model", rec["model"])
        t0 = time.perf_counter()
        parts = _run_all(moments_shard, tasks, client, progress, "moments", rec=rec, data=data)
    finally:
        close()
    total = parts[0]
    for p in parts[1:]:
        total = total.merge(p)
    total.seconds = time.perf_counter() - t0
    return total


# --------------------------------------------------------------------------- data parallelism
def _shards(n: int, parts: int) -> list:
    """[a, b) splits of n rows into at most `parts` contiguous, near-equal, non-empty pieces."""
    q, r = divmod(n, parts)
    out, a = [], 0
    for w in range(parts):
        b = a + q + (w < r)
        if b > a:
            out.append((a, b))
        a = b
    return out


def dp_grad(task: dict, rec=None, data=None):
    """One shard of a global batch (here or on a worker): (loss, gradient, estimator state) of
    the step on the shard's rows, its noise addressed by global row (the generated module's
    step_rows, row0 = the shard's first drawn row), at the parameters and state the task holds."""
    prog = _program(rec)
    prog.theta[:] = task["theta"]
    prog.state[:] = task["state"]
    batch = None if data is None else {k: v[task["idx"]] for k, v in data.items()}
    args = prog.args(batch, batch=task["rows"] if data is None else None)
    loss = prog.module.step_rows(*args, np.uint64(task["seed"]), np.int64(task["t"]), 1, np.int64(task["row0"]))
    return float(loss), prog.grad_buffer.copy(), prog.state.copy()


def dp_local(task: dict, rec=None, data=None):
    """One worker's round of periodic averaging (here or on a worker): from the task's
    parameters, estimator state and optimiser, `len(idx)` local steps on the worker's shard of
    each global batch (noise by global row, as dp_grad); returns (losses, theta, state, the
    optimiser's state)."""
    prog = _program(rec)
    prog.theta[:] = task["theta"]
    prog.state[:] = task["state"]
    opt = task["optimizer"]
    losses = []
    for j, idx in enumerate(task["idx"]):
        t = task["t"] + j
        batch = None if data is None else {k: v[idx] for k, v in data.items()}
        args = prog.args(batch, batch=task["rows"] if data is None else None)
        loss = float(prog.module.step_rows(*args, np.uint64(task["seed"]), np.int64(t), 1, np.int64(task["row0"])))
        if not np.isfinite(loss) or not prog.gradient_is_finite():
            raise ModelError(f"fit_data_parallel: the loss or its gradient became non-finite at step {t} on the "
                             f"shard from row {task['row0']} (loss {loss}); lower the learning rate or check the data")
        opt.step(prog)
        losses.append(loss)
    return losses, prog.theta.copy(), prog.state.copy(), opt.state()


def _by_rows(w, parts, base=None):
    """The shards' values combined by their rows (kernels/cpu_train.combine_by_rows, as fit's
    split rows combine theirs): sum_i w_i parts_i, or base + sum_i w_i (parts_i - base)."""
    parts = [np.asarray(p) for p in parts]
    shape, flat = parts[0].shape, tuple(np.ascontiguousarray(p, np.float64).ravel() for p in parts)
    out = np.empty_like(flat[0])
    base = np.empty(0) if base is None else np.ascontiguousarray(base, np.float64).ravel()
    combine_by_rows(tuple(float(x) for x in w), flat, base, out)
    return out.reshape(shape).astype(parts[0].dtype, copy=False)


def _sync_step(prog, optimizer, rec, arrays, client, rec_f, data_f, cuts, w, idx, n, seed, t) -> list:
    """One synchronous step of fit_data_parallel: every shard's gradient, combined by rows; the
    update taken here. Returns [the step's loss]."""
    theta, state, state0 = prog.theta.copy(), prog.state.copy(), prog.state.copy()
    tasks = [dict(theta=theta, state=state, idx=None if idx is None else idx[0, a:b], rows=b - a,
                  seed=int(seed), t=t, row0=a * prog.samples) for a, b in cuts]
    if client is None:
        out = [dp_grad(task, rec, arrays) for task in tasks]
    else:
        out = client.gather(client.map(dp_grad, tasks, rec=rec_f, data=data_f, pure=False))
    loss = sum(wi * o[0] for wi, o in zip(w, out))
    grad = _by_rows(w, [o[1] for o in out])
    if not np.isfinite(loss) or not np.all(np.isfinite(grad)):
        raise ModelError(f"fit_data_parallel: the loss or its gradient became non-finite at step {t} "
                         f"(loss {loss}); lower the learning rate or check the data")
    prog.grad_buffer[:] = grad
    prog.state[:] = _by_rows(w, [o[2] for o in out], state0)
    optimizer.step(prog)
    return [float(loss)]


def _averaging_round(prog, optimizer, rec, arrays, client, rec_f, data_f, cuts, w, idx, n, seed, t) -> list:
    """One round of periodic averaging: n local steps per shard, then parameters, estimator state
    and optimiser state averaged by rows. Returns the n steps' row-weighted losses."""
    theta, state, state0 = prog.theta.copy(), prog.state.copy(), prog.state.copy()
    optimizer._ensure(prog.theta)
    tasks = [dict(theta=theta, state=state, optimizer=optimizer,
                  idx=[None] * n if idx is None else list(idx[:, a:b]), rows=b - a, seed=int(seed), t=t,
                  row0=a * prog.samples) for a, b in cuts]
    if client is None:
        import copy
        out = [dp_local(copy.deepcopy(task), rec, arrays) for task in tasks]
    else:
        out = client.gather(client.map(dp_local, tasks, rec=rec_f, data=data_f, pure=False))
    prog.theta[:] = _by_rows(w, [o[1] for o in out])
    prog.state[:] = _by_rows(w, [o[2] for o in out], state0)
    st = out[0][3]
    optimizer.load_state({k: (v if k in ("t", "kind") else _by_rows(w, [o[3][k] for o in out]))
                          for k, v in st.items()})
    return [float(sum(wi * o[0][j] for wi, o in zip(w, out))) for j in range(n)]


def fit_data_parallel(prog, data, optimizer, steps: int, batch_size: int = 32, seed: int = 0, client=None, *,
                      workers=None, scheduler=None, shards: int | None = None, average_every: int | None = None,
                      progress: bool = True):
    """Synchronous data-parallel training: every step, each worker computes the gradient of its
    contiguous shard of the global batch (fit's batch for (seed, step)), the shards' gradients,
    losses and estimator state are combined weighted by their rows, and the update is taken here
    and sent out with the next step. Every noise value is addressed by its row in the global
    batch, so this trains exactly as `fit(prog, data, optimizer, steps, batch_size, seed,
    blas_threads=1)` does, up to the rounding of the shards' sums (tests/training/test_distributed.py).
    Worth it when a step's gradient costs much more than a round trip to the workers (a few
    ms; BENCHMARKS.md): large batches. shards: how many pieces (default: the workers).
    average_every=N: periodic parameter averaging instead (local SGD): each worker takes N local
    steps on its shard of each global batch with its own copy of the parameters, estimator state
    and optimiser, then all three are averaged (weighted by shard rows) and sent out again: one
    round trip per N steps, for batches too small for a round trip per step. With N = 1 and SGD
    this is the synchronous update; otherwise it is another training rule (the workers' Adam
    moments see shard gradients). Returns a History (the row-weighted loss of each step; every step kept
    up to history.KEEP_STEPS steps, else the bounded record)."""
    from .data import Batches
    from .history import KEEP_STEPS, History
    from ..runtime.program import Program
    steps = int(steps)
    if steps < 1:
        raise ModelError(f"fit_data_parallel: steps must be >= 1, got {steps}")
    if type(prog) is not Program:
        raise ModelError("fit_data_parallel: trains CPU programs (compile(target='cpu')); train a CUDA program "
                         "with ppl.fit on its GPU")
    if data is not None and not isinstance(data, dict):
        raise ModelError("fit_data_parallel: pass data as a dict {input name: (N, width) array}")
    from .fit import size_plate
    size_plate(prog, data)
    batches = None if data is None else Batches(data, batch_size, seed=seed, dtype=prog.dtype)
    client, close = open_client(client, workers, scheduler)
    try:
        parts = int(shards or (len(client.scheduler_info()["workers"]) if client is not None else 2))
        if parts < 1:
            raise ModelError(f"fit_data_parallel: shards must be >= 1, got {shards}")
        rec = recipe(prog)
        arrays = None if batches is None else batches.arrays
        rec_f = data_f = None
        if client is not None:
            _check_picklable("fit_data_parallel: the program's model", rec["model"])
            rec_f = _scatter(client, rec)
            data_f = None if arrays is None else _scatter(client, arrays)
        hist = History(keep_losses=steps <= KEEP_STEPS)
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"{prog.model.name} (data parallel)", unit="step", disable=not progress)
        t0 = time.perf_counter()
        N = 1 if average_every is None else int(average_every)
        if N < 1:
            raise ModelError(f"fit_data_parallel: average_every must be >= 1 or None, got {average_every}")
        t, t1 = 0, None
        while t < steps:
            if t > 0 and t1 is None:   # after the first step / round (workers compile there)
                t1, first = time.perf_counter(), t
            n = 1 if average_every is None else min(N, steps - t)
            idx = None if batches is None else batches.rows(t, n).reshape(n, -1)
            B = int(batch_size) if batches is None else idx.shape[1]
            cuts = _shards(B, parts)
            w = [(b - a) / B for a, b in cuts]
            run = _sync_step if average_every is None else _averaging_round
            losses = run(prog, optimizer, rec, arrays, client, rec_f, data_f, cuts, w, idx, n, seed, t)
            hist.append(losses)
            bar.update(len(losses))
            t += len(losses)
        bar.close()
        hist.first_step_seconds = (t1 or time.perf_counter()) - t0
        if t1 is not None:   # History.step_time divides by steps - 1: scale the later rounds' time to that
            hist.seconds = (time.perf_counter() - t1) * (steps - 1) / (steps - first)
    finally:
        close()
    return hist

__all__ = ["sweep", "SweepResult", "moments", "Moments", "fit_data_parallel", "open_client"]   # ppl.distributed.*
