"""`ppl warmup [MODEL ...]` (or `python -m ppl.warmup`): compile what `ppl train MODEL` compiles
(the step, the optimiser and record kernels, the evaluation program) into the cache folder
(`$PPL_CACHE_DIR`, default `~/.cache/ppl`) ahead of time, for machines and images that are set
up once and trained on later: the first `ppl train MODEL` there then loads everything (seconds
less than compiling it). Without MODEL it also runs the job "laws": every law as a prior (an
automatic guide) and as a likelihood, so the first run of a user's own small model finds most of
its kernels compiled.

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
LAWS = "laws"   # the job of every law as a prior (automatic guide) and a likelihood: a user's first model


def _command(model: str, train_opts) -> list:
    if model == LAWS:
        return [sys.executable, "-c", "from ppl.warmup import compile_laws; compile_laws()"]
    return [sys.executable, "-m", "ppl.cli", "train", model, "--steps", str(STEPS), "--quiet", *train_opts]


def _law_tables():
    """(priors, likelihoods): {law: prior spec} for every law an automatic guide covers, and
    {law: (spec of a real node u, data of n rows from a generator)} for every law with data."""
    import numpy as np

    from . import dsl
    from .language import dist
    pos = lambda u: dsl.softplus(u) + 0.2   # noqa: E731
    priors = {"normal": dist.Normal(0.0, 1.0), "laplace": dist.Laplace(0.0, 1.0), "student_t": dist.StudentT(3.0, 0.0, 1.0),
              "gamma": dist.Gamma(2.0, 1.0), "exponential": dist.Exponential(1.0), "half_normal": dist.HalfNormal(1.0),
              "half_cauchy": dist.HalfCauchy(1.0), "lognormal": dist.LogNormal(0.0, 1.0), "beta": dist.Beta(2.0, 2.0),
              "dirichlet": dist.Dirichlet(1.5, classes=3)}
    liks = {
        "normal": (lambda u: dist.Normal(u, 1.0), lambda r, n: r.normal(size=(n, 1))),
        "laplace": (lambda u: dist.Laplace(u, 1.0), lambda r, n: r.laplace(size=(n, 1))),
        "student_t": (lambda u: dist.StudentT(4.0, u, 1.0), lambda r, n: r.standard_t(4, size=(n, 1))),
        "poisson": (lambda u: dist.Poisson(pos(u)), lambda r, n: r.poisson(2.0, size=(n, 1)).astype(float)),
        "binomial": (lambda u: dist.Binomial(5.0, logits=u), lambda r, n: r.binomial(5, 0.4, size=(n, 1)).astype(float)),
        "geometric": (lambda u: dist.Geometric(probs=dsl.sigmoid(u)), lambda r, n: r.geometric(0.4, size=(n, 1)) - 1.0),
        "bernoulli": (lambda u: dist.Bernoulli(logits=u), lambda r, n: (r.random((n, 1)) < 0.3).astype(float)),
        "bernoulli_probs": (lambda u: dist.Bernoulli(probs=dsl.sigmoid(u)), lambda r, n: (r.random((n, 1)) < 0.3) * 1.0),
        "gamma": (lambda u: dist.Gamma(pos(u), 1.0), lambda r, n: r.gamma(2.0, size=(n, 1))),
        "exponential": (lambda u: dist.Exponential(pos(u)), lambda r, n: r.exponential(size=(n, 1))),
        "half_normal": (lambda u: dist.HalfNormal(pos(u)), lambda r, n: np.abs(r.normal(size=(n, 1))) + 1e-3),
        "half_cauchy": (lambda u: dist.HalfCauchy(pos(u)), lambda r, n: np.abs(r.standard_cauchy(size=(n, 1))) + 1e-3),
        "lognormal": (lambda u: dist.LogNormal(u, 1.0), lambda r, n: r.lognormal(size=(n, 1))),
        "beta": (lambda u: dist.Beta(pos(u), 2.0), lambda r, n: r.beta(2.0, 2.0, size=(n, 1))),
    }
    return priors, liks


def compile_laws(chunk: int = 5) -> None:
    """The "laws" job of `ppl warmup`: models of a few laws each (a step's compile grows faster
    than the step), every law an automatic guide covers as a global latent's prior and every law
    with data as a likelihood in the data plate, compiled with compile's defaults (float32) and
    trained 2 steps: the kernels a user's first model of these laws calls are then in the cache."""
    import numpy as np

    from . import dsl
    from .language import dist
    from .training import optim
    from .training.fit import fit
    priors, liks = _law_tables()
    rng = np.random.default_rng(0)
    names = sorted(set(priors) | set(liks))
    for i in range(0, len(names), chunk):
        part, data = names[i:i + chunk], {}
        with dsl.Model(f"warmup_laws_{i // chunk}") as m:
            u = dsl.rowsum(m.latent("u", dist.Normal(0.0, 1.0), width=2)) * 0.5
            for k in part:
                if k in priors:
                    u = u + 0.1 * dsl.rowsum(m.latent(f"z_{k}", priors[k], width=None if k == "dirichlet" else 1))
            if any(k in liks for k in part):
                with m.plate("data"):
                    for k in part:
                        if k in liks:
                            m.observe(f"lik_{k}", liks[k][0](u), m.input(f"y_{k}", 1))
                            data[f"y_{k}"] = liks[k][1](rng, 8)
        fit(m.compile(), data or None, optim.Adam(0.01), steps=STEPS, batch_size=8, progress=False)


def default_jobs() -> list:
    """What `ppl warmup` compiles without MODEL: the laws' job (the longest, first, so the jobs
    end together) and every bundled model."""
    from .models import MODELS
    return [LAWS, *MODELS]


def warmup(models, jobs: int | None = None, train_opts=(), out=print) -> int:
    """Compile `models` (bundled model names) as `ppl train MODEL` would, `jobs` processes at a
    time; prints one line per model; 0 when every one succeeded, else 1."""
    from .models import MODELS
    from .training.runs import UsageError
    models = list(models) or default_jobs()
    bad = [m for m in models if m not in MODELS and m != LAWS]
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
