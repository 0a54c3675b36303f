"""`ppl warmup [MODEL ...]` (or `python -m ppl.warmup`): compile what `ppl train MODEL` compiles
(the step, the optimiser and record kernels, the evaluation program) into the cache folder
(`$PPL_CACHE_DIR`, default `~/.cache/ppl`) ahead of time, for machines and images that are set
up once and trained on later: the first `ppl train MODEL` there then loads everything (seconds
less than compiling it).

Each model is a short `ppl train MODEL --steps 2` in a process of its own, with the model's
default settings (another estimator, dtype or sample count compiles other kernels: pass them
as `--train-opt`); up to `--jobs` run at once (default: the cores), sharing the cache folder,
whose per-function lock lets one process compile a kernel while the others wait for it and
load it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STEPS = 2


def _command(model: str, train_opts) -> list:
    return [sys.executable, "-m", "ppl.cli", "train", model, "--steps", str(STEPS), "--quiet", *train_opts]


def warmup(models, jobs: int | None = None, train_opts=(), out=print) -> int:
    """Compile `models` (bundled model names) as `ppl train MODEL` would, `jobs` processes at a
    time; prints one line per model; 0 when every one succeeded, else 1."""
    from .models import MODELS
    from .training.runs import UsageError
    models = list(models) or list(MODELS)
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise UsageError(f"unknown model(s) {', '.join(bad)}; bundled models: {', '.join(MODELS)}")
    jobs = max(1, min(int(jobs or os.cpu_count() or 1), len(models)))
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    pending, running, failed = list(models), {}, 0
    out(f"warmup: {len(models)} model(s) into {_cache_dir()}, {jobs} at a time")
    t0 = time.perf_counter()
    while pending or running:
        while pending and len(running) < jobs:
            m = pending.pop(0)
            running[m] = (subprocess.Popen(_command(m, train_opts), env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True), time.perf_counter())
        done = [m for m, (p, _) in running.items() if p.poll() is not None]
        for m in done:
            p, started = running.pop(m)
            log = p.stdout.read()
            p.stdout.close()
            if p.returncode == 0:
                out(f"  {m:<22} {time.perf_counter() - started:6.1f} s")
            else:
                failed += 1
                out(f"  {m:<22} failed (exit {p.returncode}):\n{log[-2000:]}")
        if not done:
            time.sleep(0.05)
    out(f"warmup: done in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


def _cache_dir() -> str:
    from .kernels._cache import cache_root
    return str(cache_root())


def add_parser(sub) -> None:
    """The `ppl warmup` sub-command (ppl/cli.py)."""
    w = sub.add_parser("warmup", help="compile the bundled models' kernels and steps into the cache ahead of time",
                       description=__doc__.split("\n\n")[0])
    w.add_argument("models", nargs="*", metavar="MODEL", help="bundled models (default: all of them)")
    w.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="models compiled at once, each in a process (default: the cores)")
    w.add_argument("--train-opt", action="append", default=[], metavar="OPTION",
                   help="an option of ppl train to compile for instead of the model's default, e.g. "
                        "--train-opt=--dtype=float64 (repeatable)")
    w.set_defaults(func=cmd_warmup)


def cmd_warmup(args) -> int:
    from .training.runs import UsageError
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    return warmup(args.models, args.jobs, args.train_opt)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ppl.warmup", description=__doc__.split("\n\n")[0])
    add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["warmup", *(sys.argv[1:] if argv is None else argv)])
    from .training.runs import UsageError
    try:
        return args.func(args)
    except UsageError as e:
        p.exit(2, f"ppl warmup: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
