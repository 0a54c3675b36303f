"""Training runs as a library: the estimator spec strings, a run's compile and its
gradient-variance column, its bounds at the end (test IWAE-k, train ELBO), a sweep's rows (their
settings, table and CSV), and the plots of ppl train / compare (training loss, held-out metric,
gradient variance along training), shared by the command line (ppl.cli, ppl.cli_compare) and the
sweeps of ppl.distributed (which import this module, never each other's private helpers).
"""
from __future__ import annotations

import csv
import itertools

import numpy as np


class UsageError(Exception):
    """A bad command-line value; reported like argparse's own errors (exit status 2)."""


def _value(s: str):
    if "," in s:
        return tuple(_value(p) for p in s.split(",") if p)
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def parse_estimators(spec: str):
    """'auto' | 'NAME[:k=v...]' | 'node=NAME[:k=v...],node2=...' -> what Model.compile takes."""
    spec = spec.strip()
    if not spec:
        raise UsageError("--estimator is empty; use 'auto', a name such as 'score', or node=NAME pairs")
    if spec == "auto":
        return "auto"

    def one(item):
        name, *opts = item.split(":")
        options = {}
        for o in opts:
            if "=" not in o:
                raise UsageError(f"--estimator: option {o!r} of '{name}' must look like key=value "
                                 f"(e.g. score:baseline=loo)")
            k, v = o.split("=", 1)
            options[k] = _value(v)
        return (name, options) if options else name

    items = [s for s in spec.split(",") if s]
    if all("=" not in it.split(":")[0] for it in items):
        if len(items) != 1:
            raise UsageError(f"--estimator {spec!r}: give one name for every node, or node=NAME pairs "
                             f"(e.g. h1=score,h2=straight_through)")
        return one(items[0])
    out = {}
    for it in items:
        head = it.split(":")[0]
        if "=" not in head:
            raise UsageError(f"--estimator: {it!r} mixes a bare name with node=NAME pairs; write node=NAME")
        node, rest = it.split("=", 1)
        out[node] = one(rest)
    return out


def compile_run(model, D: dict, seed: int, estimators, target: str = "cpu", pilot=None, evaluation=False):
    """`model` compiled for a training run with settings D (policy, dtype, samples, objective);
    estimators: a spec string as parse_estimators reads it, or what compile takes. pilot: the data
    (or a row count) a measured choice is made on now, for a run of D's steps (Program.choose);
    None: on the run's first batch. evaluation=True: the evaluation program (the report's bound,
    `Program.prepare_evaluation`) prepared too, on a measured choice's first step when the compile
    helper takes it (its jobs then queue behind that step's), else once compiled."""
    from ..compiler import ahead
    est = parse_estimators(estimators) if isinstance(estimators, str) else estimators
    prog = model.compile(estimators=est, policy=D["policy"], dtype=np.dtype(D["dtype"]), samples=int(D["samples"]),
                         seed=seed, target=target, objective=D["objective"])
    if pilot is not None and prog.measure_pending:
        data, batch = (None, int(pilot)) if isinstance(pilot, (int, np.integer)) else (pilot, None)
        if evaluation and target == "cpu":
            ahead.then(prog.prepare_evaluation)
        try:
            prog.choose(data, batch, steps=int(D["steps"]))
        finally:
            ahead.then(None)
    if evaluation and target == "cpu":
        prog.prepare_evaluation()   # queued once: here where no helper took the choice's step
    return prog


def gradient_variance(prog, data, batch, draws=100) -> float:
    """`ppl compare`'s gradient-variance column: ppl.diagnostics.gradient_variance (the model
    parameters only), `batch` rows drawn when the model has no inputs."""
    from ..runtime.diagnostics import gradient_variance as gv
    return gv(prog, data, draws, batch=None if data is not None else batch)


# --------------------------------------------------------------------------- a sweep's rows (ppl.distributed.sweep)
CURVES = ("curve", "curve_steps", "eval_steps", "eval", "eval_seconds", "params", "variance")   # a run's series
# (its fitted parameters' file, its variance record), not CSV columns
TRAIN_KEYS = ("steps", "batch", "lr", "optimizer", "samples", "dtype", "policy", "objective")
RUN_DEFAULTS = dict(steps=1000, batch=32, lr=1e-3, optimizer="adam", samples=1, dtype="float32",
                 policy="measured", objective="elbo")


class SweepResult(list):
    """The rows of a sweep, one dict per run in task order: its settings, 'estimator', 'seed',
    the model's metrics, 'grad_variance' (at initialisation, when measured), 'us_per_step',
    'curve' (the smoothed training loss) at the steps 'curve_steps', the headline metric's
    evaluations during training 'eval' at 'eval_steps' after 'eval_seconds' of training (sweep's
    eval_points), and 'error' (None, or the run's exception)."""

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
        """One line per run (the curves left out)."""
        keys = []
        for r in self:
            keys += [k for k in r if k not in CURVES and k not in keys]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows({k: v for k, v in r.items() if k not in CURVES} for r in self)


def final_bounds(prog, data, k: int, metrics: dict, hist) -> dict:
    """A sweep row's bounds at the end of its run (k > 0): 'test_iwae' (the importance-weighted
    bound with k hard draws per held-out row, Burda et al. 2016; the model's own test_iwae_k
    when it reports one) and 'train_elbo' (the ELBO of k hard draws per training row, the
    estimate the test ELBO is compared with), None where the model has no bound (not declared
    with m.latent / m.observe) or no such rows; and always 'train_loss_ema', the History's EMA
    of the training loss at the end (a relaxed estimator's: its relaxed loss)."""
    from ..errors import ModelError
    out = {"iwae_k": int(k), "test_iwae": None, "train_elbo": None, "train_loss_ema": float(hist.ema)}
    if k < 1:
        return out

    def bound(rows, kind):
        if not isinstance(rows, dict) or not rows:
            return None
        try:
            return float(prog.evaluate(rows, kind, samples=k))
        except ModelError:   # no bound for this model
            return None
    test = data.get("test") if isinstance(data, dict) else None
    known = metrics.get(f"test_iwae_{k}")
    out["test_iwae"] = float(known) if known is not None else bound(test, "iwae")
    if out["test_iwae"] is not None or not test:
        out["train_elbo"] = bound(data.get("train") if isinstance(data, dict) else None, "elbo")
    return out


def settings_grid(settings) -> list:
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


def settings_label(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


# --------------------------------------------------------------------------- the plots of ppl train / compare
def _pyplot():
    """matplotlib.pyplot on the Agg backend, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _step_axis(ax, steps) -> None:
    """Steps spanning more than 20x: a logarithmic axis (symlog from 0 when a step is 0), so the
    first steps do not fill a linear one."""
    xs = np.concatenate([np.ravel(np.asarray(x, float)) for x in steps]) if len(steps) else np.ones(1)
    xs = xs[np.isfinite(xs)]
    pos = xs[xs > 0]
    if not pos.size or xs.max() <= 20 * max(pos.min(), 1.0):
        return
    if xs.min() > 0:
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=max(1.0, float(pos.min())))


def _save(fig, plt, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")   # labels kept inside the picture
    plt.close(fig)


def plot_lines(path, series, xlabel, ylabel, title) -> bool:
    """Line plot of {label: (x, y)} to path; False (nothing written) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    import textwrap
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (x, y) in series.items():
        ax.plot(x, y, label=label)
    _step_axis(ax, [x for x, _ in series.values()])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("\n".join(textwrap.wrap(ylabel, 40)))   # labels wrapped to fit the canvas
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, plt, path)
    return True


def plot_heldout(path, runs, metric, better, title) -> bool:
    """The held-out metric of each estimator (its evaluations during training: hard samples, the
    table's number at the end) against steps and against training seconds: the mean over seeds
    and its spread (min to max). False without matplotlib or without evaluations."""
    if not any(r["eval"] for rs in runs.values() for r in rs):
        return False
    plt = _pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for spec, rs in runs.items():
        n = min(len(r["eval"]) for r in rs)
        y = np.array([r["eval"][:n] for r in rs], float)
        steps = np.asarray(rs[0]["eval_steps"][:n])
        secs = np.nanmean(np.array([r["eval_seconds"][:n] for r in rs], float), 0)
        for ax, x in zip(axes, (steps, secs)):
            line, = ax.plot(x, y.mean(0), marker="o", label=spec)
            if len(rs) > 1:
                ax.fill_between(x, y.min(0), y.max(0), color=line.get_color(), alpha=0.2)
    _step_axis(axes[0], [rs[0]["eval_steps"] for rs in runs.values()])
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("training seconds")
    import textwrap
    axes[0].set_ylabel(f"{metric} ({better} is better)")
    axes[0].legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(f"{title}: {metric} during training (hard samples), mean over seeds, band "
                                         f"min to max", 100)), fontsize=10)
    _save(fig, plt, path)
    return True


MAX_PANELS = 6   # plot_variance: a panel per layer up to so many layers (3 a row), else one of their sum
SUM = "sum over layers"


def _layer_variance(rec, panel):
    """A variance record's series for a panel: the layer's, or the sum over its layers."""
    layers = rec["layers"]
    if panel in layers:
        return np.asarray(layers[panel]["var"], float)
    if panel == SUM and layers:
        return np.sum([np.asarray(x["var"], float) for x in layers.values()], 0)
    return None


def plot_variance(path, runs, title) -> bool:
    """The gradient variance along training ({estimator: [sweep rows]}, each row's 'variance' as
    fit(track_variance=N) records it: {'step', 'layers': {layer: {'var', 'se'}}, 'draws'}): one
    panel per stochastic layer (their sum beyond MAX_PANELS layers), one line per estimator, the
    mean over seeds with a band from the least to the most; a logarithmic variance axis, and a
    logarithmic step axis where the steps span more than 20x. False without matplotlib or records."""
    recs = {spec: [r["variance"] for r in rs if r.get("variance")] for spec, rs in runs.items()}
    recs = {k: v for k, v in recs.items() if v}
    if not recs:
        return False
    plt = _pyplot()
    if plt is None:
        return False
    layers = list(dict.fromkeys(layer for v in recs.values() for rec in v for layer in rec["layers"]))
    panels = layers if len(layers) <= MAX_PANELS else [SUM]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols + 1, 3.6 * rows + 0.4), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    steps_seen, positive = [], False
    for spec, v in recs.items():
        for ax, panel in zip(axes, panels):
            ys = [y for y in (_layer_variance(rec, panel) for rec in v) if y is not None]
            if not ys:
                continue
            n = min(len(y) for y in ys)
            y = np.array([a[:n] for a in ys])
            x = np.asarray(v[0]["step"][:n], float)
            line, = ax.plot(x, y.mean(0), marker=".", label=f"{spec} ({len(ys)} seed{'s' * (len(ys) > 1)})")
            if len(ys) > 1:
                ax.fill_between(x, y.min(0), y.max(0), color=line.get_color(), alpha=0.2)
            steps_seen.append(x)
            positive |= bool((y > 0).any())
    import textwrap
    for ax, layer in zip(axes, panels):
        if positive:
            ax.set_yscale("log")
        _step_axis(ax, steps_seen)
        ax.set_title(str(layer), fontsize=10)
        ax.set_xlabel("step")
    draws = next(iter(recs.values()))[0].get("draws")
    label = "gradient variance, trace over the layer's parameters" + (f" ({draws} draws a point)" if draws else "")
    axes[0].set_ylabel("\n".join(textwrap.wrap(label, 40)))
    axes[0].legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(f"{title}: mean over seeds, band min to max", 100)), fontsize=10)
    _save(fig, plt, path)
    return True
