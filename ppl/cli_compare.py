"""`ppl compare`: train a model with several estimators over several seeds, and write what a
paper reports: the table (the headline metric, the test IWAE-k bound, the train objective, the
gradient variance, ms / step; Markdown or LaTeX), one CSV row per (estimator, seed) with the
run's hyper-parameters, and the figures (held-out metric, training loss, gradient variance
along training). ppl.cli adds the command (add_parser).

    ppl compare sbn --estimators disarm,score:baseline=loo --seeds 3 --iwae-k 100 \\
        --track-variance 20 --format latex --out runs/sbn
"""
from __future__ import annotations

import argparse
import csv
import inspect
from pathlib import Path

import numpy as np

from .cli_common import EPILOG, _build, _common, _settings, _user_data, parse_model_opts
from .dsl import ModelError
from .training.runs import UsageError, parse_estimators, plot_heldout, plot_lines, plot_variance


# --------------------------------------------------------------------------- the parser
def add_parser(sub):
    """ppl compare's options."""
    c = sub.add_parser("compare", help="train with several estimators; a table, CSVs and plots of the held-out score",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    _common(c, train_opts="compare")
    c.add_argument("--estimators", required=True, metavar="A,B,C",
                   help="estimator specs separated by commas (by ';' when a spec holds commas)")
    c.add_argument("--seeds", type=int, default=1, help="runs per estimator (default 1)")
    c.add_argument("--grad-draws", type=int, default=100, help="draws for the gradient variance (default 100)")
    c.add_argument("--eval-points", type=int, default=5, metavar="N",
                   help="evaluations of the held-out metric during each run, for heldout.png (default 5; 0: "
                        "at the end only)")
    c.add_argument("--iwae-k", type=int, default=100, metavar="K",
                   help="at the end of each run, the test IWAE bound of K hard draws per held-out row and the "
                        "ELBO of K draws per training row (default 100; 0: neither), for models declared with "
                        "m.latent / m.observe")
    c.add_argument("--track-variance", type=int, default=None, metavar="N",
                   help="measure the gradient variance per layer of the model's parameters every N steps of "
                        "each run, at its first and last step too (fit's track_variance): variance.csv and "
                        "variance.png")
    c.add_argument("--format", choices=["markdown", "latex"], default="markdown",
                   help="the table printed (and with --out written to compare.md, or compare.tex too); "
                        "default markdown")
    c.add_argument("--data", metavar="FILE", default=None, help="train on your data (as ppl train --data)")
    c.add_argument("--eval-data", metavar="FILE", default=None, help="the test rows for --data")
    c.add_argument("--workers", type=int, default=None, metavar="K",
                   help="run the (estimator, seed) trainings on a local Dask cluster of K worker processes "
                        "(pip install 'numba-ppl[distributed]')")
    c.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run them on a running Dask scheduler, e.g. tcp://HOST:8786")
    c.set_defaults(func=cmd_compare)


# --------------------------------------------------------------------------- the command
def _checked(args):
    """The estimator specs; bad counts reported as usage errors."""
    specs = [s for s in args.estimators.split(";" if ";" in args.estimators else ",") if s]
    if not specs:
        raise UsageError("--estimators is empty; list names such as score,straight_through")
    for flag, v, lo in (("--seeds", args.seeds, 1), ("--workers", args.workers, 1), ("--eval-points", args.eval_points, 0),
                        ("--iwae-k", args.iwae_k, 0), ("--track-variance", args.track_variance, 1)):
        if v is not None and v < lo:
            raise UsageError(f"{flag} must be >= {lo}, got {v}")
    for spec in specs:
        parse_estimators(spec)
    return specs


def _opt(v) -> str:
    """A model option as --model-opt writes it: tuples as 8,8."""
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


def cmd_compare(args) -> int:
    from .training.distributed import TRAIN_KEYS, sweep
    from .models import get

    mod = get(args.model)
    D = _settings(mod, args)
    specs = _checked(args)
    model_opts = parse_model_opts(args.model_opt)
    _build(mod, model_opts)   # a bad --model-opt is reported here, not once per run
    settings = {**model_opts, **{k: D[k] for k in TRAIN_KEYS if k in D}}
    common = dict(workers=args.workers, scheduler=args.scheduler, grad_draws=args.grad_draws, progress=not args.quiet,
                  eval_points=args.eval_points, keep_params=bool(args.out), iwae_k=args.iwae_k,
                  track_variance=args.track_variance)
    about = "bundled"
    if args.data is not None or getattr(mod, "USER", None):
        d, model_opts = _user_data(mod, args, model_opts, D["dtype"])
        settings.update(model_opts)
        about = d.get("about", args.data)
        res = sweep(mod.build, specs, args.seeds, settings, data=d, evaluate=mod.evaluate, **common)
    else:
        if args.eval_data is not None:
            raise UsageError("--eval-data needs --data FILE (the training data)")
        res = sweep(args.model, specs, args.seeds, settings, **common)
    runs = {}
    for spec in specs:
        runs[spec] = [r for r in res if r["estimator"] == spec]
        failed = [r for r in runs[spec] if r["error"]]
        if failed:
            raise ModelError(f"compare: estimator {spec!r}, seed {failed[0]['seed']}: {failed[0]['error']}")
    defaults = {k: p.default for k, p in inspect.signature(mod.build).parameters.items()
                if p.default is not inspect.Parameter.empty}
    hyper = {"model": args.model, "data": about, **{k: D[k] for k in TRAIN_KEYS if k in D},
             **{f"model_opt.{k}": _opt(v) for k, v in {**defaults, **model_opts}.items()},
             "grad_draws": args.grad_draws, "eval_points": args.eval_points, "iwae_k": args.iwae_k,
             "track_variance": args.track_variance or 0}
    better = getattr(mod, "BETTER", "lower")
    cols = _columns(runs, mod.HEADLINE, better, args.seeds, args.iwae_k)
    summary = _summary(runs, cols)
    tables = {fmt: _table(summary, cols, fmt) for fmt in dict.fromkeys(("markdown", args.format))}
    print(f"\n{args.model}: {D['steps']} steps, batch {D['batch']}, {D['optimizer']} lr={D['lr']}\n")
    print(tables[args.format])
    if args.out:
        _compare_files(Path(args.out), runs, cols, summary, hyper, args, better, tables)
    return 0


# --------------------------------------------------------------------------- the table
def _columns(runs, metric, better, seeds, k) -> list:
    """The table's columns: (row key, CSV name, Markdown header, LaTeX header); the IWAE column
    only where a run has the bound, the train objective the ELBO where there is one, else the
    training loss's EMA."""
    from .runtime.diagnostics import WARM_STEPS
    up = {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}
    n = f"{seeds} seed{'s' * (seeds > 1)}"
    cols = [(metric, metric, f"{metric}, {better} is better (mean ± sd over {n})", f"{_tex(metric)} {up[better]}"),
            ("grad_variance", "grad_variance", f"gradient variance at init, state warmed {WARM_STEPS} steps (trace, "
             f"model parameters), lower is better", r"grad.\ variance $\downarrow$"),
            ("ms_per_step", "ms_per_step", "ms / step, lower is better", r"ms / step $\downarrow$")]
    rs = [r for v in runs.values() for r in v]
    if any(r.get("test_iwae") is not None for r in rs):
        cols.append(("test_iwae", f"test_iwae_{k}", f"test IWAE-{k} ({k} hard draws per held-out row), higher is "
                     f"better", f"IWAE-{k} $\\uparrow$"))
    if any(r.get("train_elbo") is not None for r in rs):
        cols.append(("train_elbo", "train_elbo", f"train ELBO ({k} hard draws per training row), higher is better",
                     r"train ELBO $\uparrow$"))
    else:
        cols.append(("train_loss_ema", "train_loss_ema", "final training loss (EMA; relaxed estimators: their "
                     "relaxed loss), lower is better", r"train loss $\downarrow$"))
    return cols


def _value(r, key):
    v = r.get(key) if key != "ms_per_step" else (None if r.get("us_per_step") is None else r["us_per_step"] / 1000)
    return float("nan") if v is None else float(v)


def _summary(runs, cols) -> list:
    """Per estimator: (spec, seeds, {CSV name: (mean, sd)}), sd NaN for one seed."""
    out = []
    for spec, rs in runs.items():
        stats = {}
        for key, name, _, _ in cols:
            v = np.array([_value(r, key) for r in rs])
            ok = v[np.isfinite(v)]
            stats[name] = (float(ok.mean()) if ok.size else float("nan"),
                           float(np.std(ok, ddof=1)) if ok.size > 1 else float("nan"))
        out.append((spec, len(rs), stats))
    return out


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "±": r"$\pm$"}


def _tex(s: str) -> str:
    """Text as LaTeX typesets it literally."""
    return "".join(_TEX.get(c, c) for c in s)


def _cell(mean, sd, i, tex) -> str:
    if not np.isfinite(mean):
        return "–" if not tex else "--"
    text = f"{mean:.4g}" if i in (1, 2) else f"{mean:.6g}"   # the variance and ms: 4 digits
    if np.isfinite(sd) and i not in (1, 2):
        text += (r" $\pm$ " if tex else " ± ") + f"{sd:.2g}"
    return text


def _table(summary, cols, fmt) -> str:
    """The table in Markdown (every column saying which way is better) or LaTeX (booktabs, the
    long headers in the caption)."""
    tex = fmt == "latex"
    rows = [[_tex(spec) if tex else spec] + [_cell(*st[name], i, tex) for i, (_, name, _, _) in enumerate(cols)]
            for spec, _, st in summary]
    if not tex:
        head = ["estimator"] + [c[2] for c in cols]
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    head = ["estimator"] + [c[3] for c in cols]
    caption = "; ".join(_tex(c[2]) for c in cols)
    return "\n".join([r"\begin{table}", r"\centering", r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule",
                      " & ".join(head) + r" \\", r"\midrule", *(" & ".join(r) + r" \\" for r in rows),
                      r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}.}}", r"\end{table}"])


# --------------------------------------------------------------------------- the files
def _safe(spec: str) -> str:
    """An estimator spec as a file name: letters, digits, '_', '-', '.', '=' kept, the rest '_'."""
    return "".join(c if c.isalnum() or c in "_-.=" else "_" for c in spec) or "auto"


def _write(path, head, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerows(rows)


def _num(v):
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else repr(v) if isinstance(v, float) else v


ROW_KEYS = {"settings", "estimator", "seed", "grad_variance", "us_per_step", "error", "iwae_k", "test_iwae",
            "train_elbo", "train_loss_ema"}   # a sweep row's own fields; its other numbers are the model's metrics


def _run_csvs(out: Path, runs, cols, summary, hyper) -> list:
    """compare.csv (one row per run: the table's numbers, the train ELBO and loss EMA, the model's
    other metrics, its hyper-parameters), summary.csv (per estimator: mean and sd over seeds),
    heldout.csv and variance.csv."""
    from .training.runs import CURVES
    names = [c[1] for c in cols]
    keys = [(c[0], c[1]) for c in cols] + [(k, k) for k in ("train_elbo", "train_loss_ema") if k not in names]
    rs = [(spec, r) for spec, v in runs.items() for r in v]
    metrics = list(dict.fromkeys(k for _, r in rs for k, v in r.items() if k not in ROW_KEYS and k not in CURVES
                                 and k not in names and isinstance(v, (int, float))))
    hk = list(hyper)
    _write(out / "compare.csv", ["estimator", "seed", *(n for _, n in keys), *metrics, *hk],
           [[spec, r["seed"], *(_num(_value(r, k)) for k, _ in keys), *(_num(r.get(k)) for k in metrics),
             *(hyper[k] for k in hk)] for spec, r in rs])
    _write(out / "summary.csv", ["estimator", f"{names[0]}_mean", f"{names[0]}_sd", "seeds", *names[1:3],
                                 *(f"{n}_{s}" for n in names[3:] for s in ("mean", "sd"))],
           [[spec, _num(st[names[0]][0]), _num(st[names[0]][1]), n, *(_num(st[k][0]) for k in names[1:3]),
             *(_num(st[k][i]) for k in names[3:] for i in (0, 1))] for spec, n, st in summary])
    metric = cols[0][1]
    _write(out / "heldout.csv", ["estimator", "seed", "step", "train_seconds", metric],   # what heldout.png draws
           [[spec, r["seed"], st, repr(sec), repr(v)] for spec, rs in runs.items() for r in rs
            for st, sec, v in zip(r["eval_steps"] or (), r["eval_seconds"] or (), r["eval"] or ())])
    wrote = [out / "compare.csv", out / "summary.csv", out / "heldout.csv"]
    var = [[spec, r["seed"], int(s), layer, repr(float(v)), repr(float(e))] for spec, rs in runs.items() for r in rs
           if r.get("variance") for layer, rec in r["variance"]["layers"].items()
           for s, v, e in zip(r["variance"]["step"], rec["var"], rec["se"])]
    if var:
        _write(out / "variance.csv", ["estimator", "seed", "step", "layer", "var", "se"], var)
        wrote.append(out / "variance.csv")
    return wrote


def _compare_files(out: Path, runs, cols, summary, hyper, args, better, tables) -> None:
    """The tables ({format: text}: compare.md; compare.tex with --format latex), the CSVs
    (_run_csvs), each run's parameters (params/SPEC_seedN.npz), heldout.png, training.png and
    variance.png."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(tables["markdown"] + "\n")
    wrote = [out / "compare.md"]
    if "latex" in tables:
        (out / "compare.tex").write_text(tables["latex"] + "\n")
        wrote.append(out / "compare.tex")
    wrote += _run_csvs(out, runs, cols, summary, hyper)
    params = out / "params"   # each run's fitted parameters and estimator state, as Program.save writes them
    params.mkdir(exist_ok=True)
    for spec, rs in runs.items():
        for r in rs:
            if r.get("params") is not None:
                (params / f"{_safe(spec)}_seed{r['seed']}.npz").write_bytes(r["params"])
    wrote.append(params / "*.npz")
    metric = cols[0][1]
    title = f"ppl compare {args.model}"
    plots = 0
    if plot_heldout(out / "heldout.png", runs, metric, better, title):
        wrote.append(out / "heldout.png")
        plots += 1
    curves = {spec: (np.asarray(rs[0]["curve_steps"]), np.mean([r["curve"] for r in rs], 0)) for spec, rs in runs.items()}
    if plot_lines(out / "training.png", curves, "step", "training loss (EMA)",
                  f"{title}: the training loss, EMA, mean over seeds (relaxed estimators: their relaxed loss; "
                  f"not the held-out score)"):
        wrote.append(out / "training.png")
        plots += 1
    if any(r.get("variance") for rs in runs.values() for r in rs):
        if plot_variance(out / "variance.png", runs, f"{title}: gradient variance along training"):
            wrote.append(out / "variance.png")
            plots += 1
    elif args.track_variance:
        print("note: no run recorded the gradient variance along training (fit's track_variance)")
    print(f"\nwrote {', '.join(str(w) for w in wrote)}" + ("" if plots else
          " (install matplotlib for the plots: pip install 'numba-ppl[plot]')"))
