"""The `ppl` command line: train a ready model, explain its estimator choices, compare estimators.

    ppl train sbn                                   # the README's command
    ppl train sbn --data mnist.npz --model-opt latent=200,200
    ppl explain sbn --policy fast
    ppl render sbn -o sbn.svg                       # a picture of the model
    ppl compare toy_bernoulli --estimators score,straight_through,concrete --seeds 3
    ppl warmup                                      # compile the bundled models into the cache

Bad arguments exit with status 2 and one clear line on stderr (argparse's convention), as do
model errors (an estimator that does not apply, a target that is not available). `ppl compare`
is ppl/cli_compare.py; the parts the commands share are ppl/cli_common.py.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .cli_common import (  # noqa: F401  (ppl.cli names)
    EPILOG, _build, _common, _model_arg, _settings, _user_data, parse_model_opts)
from .cli_compare import add_parser as compare_parser
from .dsl import ModelError
from .training.runs import plot_lines
from .training.runs import (  # noqa: F401  (ppl.cli names)
    UsageError, _value, compile_run, gradient_variance, parse_estimators)

# --------------------------------------------------------------------------- shared steps
def _pilot(mod, D, d, seed):
    """Policy autotune's pilot data: the first --batch rows of the training data (d, else the
    model's own), or that many rows for a model without inputs."""
    train = (d if d is not None else mod.data(seed=seed))["train"]
    if not train:
        return int(D["batch"])
    return {k: v[: int(D["batch"])] for k, v in train.items()}


def _compile(mod, D, model_opts, seed, estimators=None, target="cpu", data=None, evaluation=False):
    model = _build(mod, model_opts)
    pilot = None
    if D["policy"] in ("measured", "autotune"):
        try:
            pilot = _pilot(mod, D, data, seed)
        except ModelError:   # no data to measure on (a user's model without --data): the rule table's choice,
            pilot = None     # measured on the first batch a fit sees
    t0 = time.perf_counter()
    prog = compile_run(model, D, seed, estimators if estimators is not None else D["estimators"], target, pilot,
                       evaluation=evaluation)
    return prog, time.perf_counter() - t0


def _expect_run(D):
    """The optimiser's update and the loss record a run with settings D calls at its first step,
    queued on the compile helper the program's new step launches (compiler/ahead.expect)."""
    from .compiler import ahead
    from .training.history import History
    from .training.optim import make
    ahead.expect(lambda p: [*make(D["optimizer"], float(D["lr"])).kernel_calls(p.theta, p.grad_buffer),
                            History().kernel_call()])


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from .models import get
    from .targets import check_target

    check_target(args.target)
    mod = get(args.model)
    D = _settings(mod, args)
    model_opts, d = parse_model_opts(args.model_opt), None
    if args.data is not None:
        d, model_opts = _user_data(mod, args, model_opts, D["dtype"])
    elif args.eval_data is not None:
        raise UsageError("--eval-data needs --data FILE (the training data)")
    if args.target == "cpu":   # the run's first needs, compiled by the helper while the choice's programs compile
        _expect_run(D)
    # the report's test ELBO / IWAE-100: compiled beside the training step
    prog, t_compile = _compile(mod, D, model_opts, args.seed, target=args.target, data=d, evaluation=True)
    print(f"model {prog.model.name}: {D['optimizer']} lr={D['lr']}, batch {D['batch']}, {D['steps']} steps, "
          f"{np.dtype(D['dtype']).name}, seed {args.seed}")
    print(prog.explain())
    if d is None:
        d = mod.data(seed=args.seed)
    else:
        print(f"data: {d['about']}")
    rows = _rows(d.get("train"))
    if rows is not None and int(D["batch"]) > rows:
        print(f"note: --batch {int(D['batch'])} is larger than the training data's {rows} rows: every step takes the "
              f"{rows} rows (give --batch {rows} or less)")
    out = Path(args.out) if args.out else None
    if args.resume and out is None:
        raise UsageError("--resume continues from DIR/checkpoint.npz: give --out DIR")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if args.resume and (out / "checkpoint.npz").exists():
        print(f"resuming from {out / 'checkpoint.npz'}")
    every = args.eval_every
    if every is not None and every < 1:
        raise UsageError(f"--eval-every must be >= 1, got {every}")
    if every is None and out is not None and args.workers is None and args.scheduler is None:
        every = max(1, int(D["steps"]) // 20)   # a held-out curve of ~20 points with --out
    if every is not None and "test" not in d:
        raise UsageError(f"--eval-every needs held-out data; {args.model} has no test split here (--eval-data FILE)")
    parallel = args.workers is not None or args.scheduler is not None
    hist = _train(args, prog, d, D, out, every, parallel)
    _report(args, mod, prog, d, D, hist, t_compile, out, parallel)
    return 0


def _rows(train):
    """The rows of training data ({name: array}), or None (a model without inputs)."""
    if not isinstance(train, dict) or not train:
        return None
    return int(np.shape(next(iter(train.values())))[0])


def _train(args, prog, d, D, out, every, parallel):
    """ppl train's fit: in this process, or data-parallel on Dask (--workers / --scheduler)."""
    from .training.fit import fit
    from .training.optim import make

    if parallel:
        if args.workers is not None and args.workers < 1:
            raise UsageError(f"--workers must be >= 1, got {args.workers}")
        if args.average_every is not None and args.average_every < 1:
            raise UsageError(f"--average-every must be >= 1, got {args.average_every}")
        if args.resume or args.eval_every is not None or args.target != "cpu":
            raise UsageError("--workers / --scheduler (data-parallel training) takes no --resume, --eval-every or "
                             "--target cuda; train in one process for those")
        from .training.distributed import fit_data_parallel
        return fit_data_parallel(prog, d["train"], make(D["optimizer"], float(D["lr"])), int(D["steps"]),
                                 int(D["batch"]), seed=args.seed, workers=args.workers, scheduler=args.scheduler,
                                 average_every=args.average_every, progress=not args.quiet)
    if args.average_every is not None:
        raise UsageError("--average-every is for data-parallel training: give --workers K or --scheduler ADDRESS")
    return fit(prog, d["train"], make(D["optimizer"], float(D["lr"])), steps=int(D["steps"]),
               batch_size=int(D["batch"]), seed=args.seed, progress=not args.quiet,
               checkpoint=(out / "checkpoint.npz") if out is not None else None, resume=args.resume,
               eval_every=every, eval_data=d.get("test") if every is not None else None)


def _report(args, mod, prog, d, D, hist, t_compile, out, parallel):
    """ppl train's report: the model's metrics, times, and with --out DIR its files."""
    t_eval = time.perf_counter()
    metrics = mod.evaluate(prog, d)
    t_eval = time.perf_counter() - t_eval
    print(f"\nreport ({args.model}, {D['steps']} steps)")
    print(f"  final training loss (EMA)   {hist.ema:.4f}")
    for k, v in metrics.items():
        print(f"  {k:<27} {_fmt(v)}")
    # the step (and fit's loop) is JIT-compiled or loaded from the cache at the first step: compile time
    jit = max(0.0, hist.first_step_seconds - hist.step_time)
    print(f"  compile {t_compile + jit:.1f} s (graph {t_compile:.1f} s, JIT at the first step {jit:.1f} s), "
          f"{1000 * hist.step_time:.3f} ms/step, evaluation {t_eval:.1f} s")
    if out is not None:
        prog.save(out / "params.npz")
        (out / "report.json").write_text(json.dumps(
            {"model": args.model, "data": d.get("about", "bundled"),
             "settings": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in D.items()},
             "metrics": metrics, "ms_per_step": 1000 * hist.step_time, "compile_s": t_compile + jit,
             "seed": args.seed}, indent=2))
        curve = hist.curve()
        _write_curve(out / "curve.csv", hist, curve)
        wrote = [out / "params.npz", *([] if parallel else [out / "checkpoint.npz"]), out / "report.json",
                 out / "curve.csv"]
        if plot_lines(out / "curve.png", {"training (EMA)": (curve["step"], curve["ema"]),
                                     "held-out": (np.array(hist.eval_steps), np.array(hist.eval))},
                 "step", "loss (negative objective per data row)", f"ppl train {args.model}"):
            wrote.append(out / "curve.png")
        print(f"  wrote {', '.join(map(str, wrote))}")


def _write_curve(path, hist, curve) -> None:
    """curve.csv: one line per point of the History's loss record (the training loss's mean,
    min and max over the point's block of steps, its EMA at the block's end) and per held-out
    evaluation (training seconds, the EMA there, the held-out loss), in step order; a line at
    both has every column, other cells are empty."""
    def g(v, fmt=".6g"):
        return "" if v is None or not np.isfinite(v) else format(v, fmt)
    rows = {}
    for s, mean, lo, hi, e in zip(curve["step"].tolist(), curve["mean"].tolist(), curve["min"].tolist(),
                                  curve["max"].tolist(), curve["ema"].tolist()):
        rows[s] = [None, e, None, mean, lo, hi]
    for s, sec, e, v in zip(hist.eval_steps, hist.eval_seconds, hist.eval_train, hist.eval):
        r = rows.setdefault(int(s), [None, e, None, None, None, None])
        r[0], r[1], r[2] = sec, e, v
    with open(path, "w") as f:
        f.write("step,train_seconds,train_loss_ema,heldout_loss,train_loss_mean,train_loss_min,train_loss_max\n")
        f.writelines(f"{s},{g(r[0], '.6f')},{','.join(g(v) for v in r[1:])}\n" for s, r in sorted(rows.items()))


def cmd_explain(args) -> int:
    from .models import get
    mod = get(args.model)
    D = _settings(mod, args)
    prog, _ = _compile(mod, D, parse_model_opts(args.model_opt), 0)
    print(f"model {prog.model.name} (policy {D['policy']})")
    print(prog.explain())
    return 0


def cmd_render(args) -> int:
    from .models import get
    mod = get(args.model)
    D = _settings(mod, args)
    opts = parse_model_opts(args.model_opt)
    out = args.output
    if D["policy"] in ("measured", "autotune"):   # measured on data: the compiled program's choice
        prog, _ = _compile(mod, D, opts, 0)
        out = out or f"{prog.model.name}.svg"
        prog.render(out, detail=args.detail)
    else:   # the estimators compile would choose, without compiling
        model = _build(mod, opts)
        out = out or f"{model.name}.svg"
        est = parse_estimators(D["estimators"]) if isinstance(D["estimators"], str) else D["estimators"]
        model.render(out, detail=args.detail, estimators=est, policy=D["policy"], samples=int(D["samples"]),
                     objective=D["objective"])
    print(f"wrote {out}")
    return 0


def cmd_list(args) -> int:
    from .estimators import REGISTRY
    from .models import CITATIONS, MODELS
    w = max(map(len, [*MODELS, *REGISTRY]))
    print("models (ppl train MODEL):")
    for k, v in MODELS.items():
        print(f"  {k:<{w}}  {v}")
        if CITATIONS.get(k):
            print(f"  {'':<{w}}  {CITATIONS[k]}")
    print("\nestimators (--estimator NAME; the default policy, measured, measures the unbiased ones):")
    for k, e in REGISTRY.items():
        print(f"  {k:<{w}}  {e.about}{'' if e.unbiased else ' (biased)'}")
        if e.cite:
            print(f"  {'':<{w}}  {e.cite}")
    return 0


# --------------------------------------------------------------------------- the parser
def _train_parser(sub):
    """ppl train's options."""
    t = sub.add_parser("train", help="train a model and report its held-out metrics",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    _common(t)
    t.add_argument("--estimator", default=None, metavar="SPEC",
                   help="auto | NAME | node=NAME,... (default: the model's, usually auto)")
    t.add_argument("--seed", type=int, default=0, help="initialisation, batches and draws (default 0)")
    t.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="held-out objective every N steps (default with --out: ~20 points, written to "
                        "DIR/curve.csv and curve.png)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is DIR/checkpoint.npz (--out DIR) up to --steps; "
                        "the same settings and seed give the parameters of an uninterrupted run")
    t.add_argument("--target", choices=["cpu", "cuda"], default="cpu", help="where the step runs (default cpu)")
    t.add_argument("--data", metavar="FILE", default=None,
                   help="train on your data: an .npz with an array per model input (x, or train_x and test_x) "
                        "or MNIST IDX images (*-images-idx3-ubyte[.gz], binarised at > 127 for a Bernoulli "
                        "input); the model's width is the data's. Without test rows the last 10%% are held out")
    t.add_argument("--eval-data", metavar="FILE", default=None,
                   help="the test rows for --data (arrays x or test_x, or IDX images)")
    t.add_argument("--workers", type=int, default=None, metavar="K",
                   help="data-parallel training on a local Dask cluster of K worker processes, each the "
                        "gradient of its shard of every batch (pip install 'numba-ppl[distributed]'); pays for "
                        "large batches only (BENCHMARKS.md)")
    t.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="data-parallel training on a running Dask scheduler, e.g. tcp://HOST:8786")
    t.add_argument("--average-every", type=int, default=None, metavar="N",
                   help="with --workers: each worker takes N local steps, then parameters and optimiser "
                        "state are averaged (periodic averaging; default: synchronous, equal to one process)")
    t.set_defaults(func=cmd_train)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ppl", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Train ready stochastic computation graphs, see which gradient estimator each random "
                    "node gets and why, and compare estimators side by side.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    _train_parser(sub)

    e = sub.add_parser("explain", help="print the estimator chosen for every stochastic node, and why")
    _common(e, train_opts=False)
    e.add_argument("--estimator", default=None, metavar="SPEC", help="auto | NAME | node=NAME,...")
    e.set_defaults(func=cmd_explain)

    r = sub.add_parser("render", help="draw the model: inputs, parameters, random nodes, costs, plates (SVG, PNG)")
    _common(r, train_opts=False)
    r.add_argument("--estimator", default=None, metavar="SPEC", help="auto | NAME | node=NAME,...")
    r.add_argument("-o", "--output", metavar="FILE", help="MODEL.svg by default; .png (Graphviz or matplotlib), "
                                                         ".dot / .gv (Graphviz source)")
    r.add_argument("--detail", action="store_true", help="every node, elementwise ops and constants too")
    r.set_defaults(func=cmd_render)

    compare_parser(sub)   # ppl compare: ppl/cli_compare.py

    ls = sub.add_parser("list", help="list the ready models and the estimators, with the papers they follow")
    ls.set_defaults(func=cmd_list)

    from .warmup import add_parser
    add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ModelError) as e:
        parser.exit(2, f"ppl {args.command}: error: {e}\n")
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
