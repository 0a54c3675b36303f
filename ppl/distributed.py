"""Beyond one machine with Dask: estimator sweeps and sharded Monte-Carlo moments of the gradient.

    pip install 'ppl[distributed]'          # dask[distributed]; imported only when used

    from ppl.distributed import sweep, moments
    res = sweep("sbn", ["disarm", "score"], seeds=4, workers=2)    # a LocalCluster of 2 processes
    print(res.table()); res.to_csv("sweep.csv")
    m = moments(prog, {"x": batch}, draws=10**6, scheduler="tcp://HOST:8786")

Where tasks run: `client=` any `dask.distributed.Client` you made (SLURM / PBS through
dask-jobqueue: `Client(SLURMCluster(...))`), else `scheduler="tcp://HOST:PORT"` (a running
scheduler), else `workers=N` (a LocalCluster of N single-threaded worker processes, closed
afterwards), else nothing: the same tasks run here, one after another. The results do not depend
on where they ran: a sweep's rows equal the serial run's (each run trains with one BLAS thread);
`moments` addresses every gradient draw by its global index (seed, draw) and merges the shards'
running statistics in shard order, so any cluster gives the serial answer bit for bit.

Task sizes: the scheduler spends about a millisecond per task and a worker compiles each model
once (the generated step is cached on disk, PPL_CACHE_DIR, shared by the workers of a machine),
so a task holds a whole training run (sweep) or `draws_per_task` gradient draws (moments; by
default enough for ~8 tasks per worker). Faults: a task whose run raises becomes a row with its
settings and the error, the others complete; a worker that dies has its tasks rerun elsewhere
by the scheduler, each result kept once.

What travels to the workers: models (a `ppl.Model` pickles), numbers and arrays, and `build` /
`evaluate` callables, which must be importable there or pickle by value: a Numba function defined
in `__main__` does not (dask/distributed#4597); move it to a module.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import pickle
import time
from dataclasses import dataclass

import numpy as np

from .dsl import ModelError

TRAIN_KEYS = ("steps", "batch", "lr", "optimizer", "samples", "dtype", "policy", "objective")
_DEFAULTS = dict(steps=1000, batch=32, lr=1e-3, optimizer="adam", samples=1, dtype="float32",
                 policy="unbiased", objective="elbo")


# --------------------------------------------------------------------------- the cluster
def _dask():
    try:
        import dask.distributed as dd
    except ImportError:
        raise ModelError("ppl.distributed needs Dask: pip install 'ppl[distributed]' "
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
                              dashboard_address=None)
    c = dd.Client(cluster)

    def close():
        c.close()
        cluster.close()
    return c, close


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
        big = {k: client.scatter(v, broadcast=True) for k, v in kwargs.items() if v is not None}
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
class SweepResult(list):
    """The rows of a sweep, one dict per run in task order: its settings, 'estimator', 'seed',
    the model's metrics, 'grad_variance' (at initialisation, when measured), 'us_per_step',
    'curve' (the smoothed training loss) and 'error' (None, or the run's exception)."""

    headline: str | None = None

    def table(self, metric: str | None = None) -> str:
        """Markdown: one line per (settings, estimator), the metric's mean +- sd over seeds."""
        metric = metric or self.headline
        groups = {}
        for r in self:
            key = (r["settings"], r["estimator"])
            groups.setdefault(key, []).append(r)
        head = ["settings", "estimator", f"{metric} (mean ± sd)", "seeds", "gradient variance at init",
                "us / step", "errors"]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for (settings, est), rows in groups.items():
            ok = [r for r in rows if r["error"] is None]
            vals = [r[metric] for r in ok if metric in r]
            cell = "" if not vals else (f"{np.mean(vals):.6g}" + (f" ± {np.std(vals, ddof=1):.2g}" if len(vals) > 1 else ""))
            gv = [r["grad_variance"] for r in ok if r.get("grad_variance") is not None]
            us = [r["us_per_step"] for r in ok]
            lines.append("| " + " | ".join([settings or "-", est, cell, str(len(ok)),
                                              f"{np.mean(gv):.4g}" if gv else "",
                                              f"{np.mean(us):.1f}" if us else "",
                                              "; ".join(r["error"] for r in rows if r["error"])]) + " |")
        return "\n".join(lines)

    def to_csv(self, path) -> None:
        """One line per run (the curve left out)."""
        keys = []
        for r in self:
            keys += [k for k in r if k != "curve" and k not in keys]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows({k: v for k, v in r.items() if k != "curve"} for r in self)


def _grid(settings) -> list:
    """settings: None, one dict, a list of dicts, or a dict of lists (their product)."""
    if settings is None:
        return [{}]
    if isinstance(settings, dict):
        if any(isinstance(v, list) for v in settings.values()):
            keys = list(settings)
            vals = [v if isinstance(v, list) else [v] for v in settings.values()]
            return [dict(zip(keys, combo)) for combo in itertools.product(*vals)]
        return [dict(settings)]
    return [dict(s) for s in settings]


def _label(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def sweep(build, estimators, seeds, settings=None, client=None, *, workers=None, scheduler=None, data=None,
          evaluate=None, grad_draws: int = 0, progress: bool = True) -> SweepResult:
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
    client / workers / scheduler: where to run (module docstring); none of them: here.
    """
    if isinstance(build, str):
        from .models import get
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
    grid = _grid(settings)
    tasks = [dict(build=build, estimator=e, seed=s, settings=st, grad_draws=int(grad_draws), evaluate=evaluate)
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
    row = dict(settings=_label(task["settings"]), estimator=str(task["estimator"]), seed=task["seed"],
               metrics={}, grad_variance=None, us_per_step=None, curve=None, error=None)
    try:
        row.update(_train(task, data))
    except Exception as e:  # noqa: BLE001 - a failed run is reported in its row; the sweep goes on
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def _train(task, data):
    from .cli import gradient_variance, parse_estimators
    from .fit import fit, heldout_loss
    from .optim import make
    build, settings = task["build"], task["settings"]
    if isinstance(build, str):
        from .models import get
        mod = get(build)
        D = {**_DEFAULTS, **mod.DEFAULTS}
        build_fn, data, evaluate = mod.build, mod.data(seed=0), mod.evaluate
    else:
        D, build_fn, evaluate = dict(_DEFAULTS), build, task["evaluate"]
    D.update({k: v for k, v in settings.items() if k in TRAIN_KEYS})
    model = build_fn(**{k: v for k, v in settings.items() if k not in TRAIN_KEYS})
    est = task["estimator"]
    prog = model.compile(estimators=parse_estimators(est) if isinstance(est, str) else est, policy=D["policy"],
                         dtype=np.dtype(D["dtype"]), samples=int(D["samples"]), seed=task["seed"],
                         objective=D["objective"])
    train, batch = data["train"], int(D["batch"])
    out = {}
    if task["grad_draws"]:
        gdata = None if train is None else {k: v[:batch] for k, v in train.items()}
        out["grad_variance"] = gradient_variance(prog, gdata, batch, draws=task["grad_draws"])
    hist = fit(prog, train, make(D["optimizer"], float(D["lr"])), steps=int(D["steps"]), batch_size=batch,
               seed=task["seed"], progress=False, blas_threads=1)
    if evaluate is not None:
        out["metrics"] = {k: float(v) for k, v in evaluate(prog, data).items()}
    else:
        out["metrics"] = {"heldout_loss": heldout_loss(prog, data["test"])}
    out["us_per_step"] = 1e6 * hist.step_time
    out["curve"] = hist.smoothed().tolist()
    return out


# --------------------------------------------------------------------------- gradient moments
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
    """What rebuilds `prog` elsewhere: its model, every node's estimator and options, dtype,
    samples, objective and lowering, and its current parameters and estimator state."""
    prog.pull()
    return dict(model=prog.model, dtype=np.dtype(prog.dtype).name, samples=prog.samples, objective=prog.objective,
                lowering="scalar" if prog.layout.lowering.startswith("row-fused scalar") else "arrays",
                estimators={n.name: (ch.estimator, dict(ch.options)) for n, (ch, _) in prog.choices.items()},
                theta=prog.theta.copy(), state=prog.state.copy())


_PROGRAMS = {}   # per process: recipe digest -> compiled program (a worker compiles a model once)


def _program(rec):
    spec = {k: v for k, v in rec.items() if k not in ("theta", "state")}
    key = hashlib.sha256(pickle.dumps(spec)).hexdigest()
    prog = _PROGRAMS.get(key)
    if prog is None:
        prog = _PROGRAMS[key] = rec["model"].compile(
            estimators=rec["estimators"], dtype=np.dtype(rec["dtype"]), samples=rec["samples"],
            objective=rec["objective"], lowering=rec["lowering"])
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
            draws_per_task: int | None = None, batch: int | None = None, progress: bool = True) -> Moments:
    """Mean and variance of `prog`'s gradient (model parameters) over `draws` draws at its current
    parameters on `data` (a batch {input: array}; or None with batch=rows for a model without
    inputs), sharded over the workers. Draw d is addressed by (seed, d), and the shards' moments
    are merged in shard order, so the answer equals the serial one bit for bit, wherever it ran.
    CUDA programs are measured with their CPU twin."""
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
