"""A hidden Markov model's exact gradient: ppl's summed-out chain (`guide="enumerate"` in a
`ppl.scan`, the forward algorithm, ppl/language/markov.py) against the forward algorithm a JAX
user writes (log-softmax transition and emission matrices, `lax.scan` over the steps,
`jax.value_and_grad` of the mean -log p(x), in one `jax.jit`).

    pip install -e '.[bench]'      # jax
    python benchmarks/hmm.py [--cases 3x4x50x200,3x4x200x1000] [--rounds 7] [--seconds 0.5]

A case is S states x M symbols x T steps x N sequences (simulated, float32), the model of
tests/language/test_markov.py: the transition's logits an affine of the previous state (one-hot;
zeros before the first step), the emission's an affine of the state. Each way times itself for
about --seconds per round, alternating: ppl's `prog.grad` (its defaults, one call per gradient,
OPENBLAS_NUM_THREADS=1), and JAX in worker processes at XLA's default threads and pinned to one
core (set before jax is imported), one jitted call per gradient (`jax_jit`; n gradients of the
same parameters in one jitted loop are not a measure: XLA hoists the loop-invariant gradient out
of it). Medians over the rounds; ratio = JAX's best / ppl's. Prints JSON lines; BENCHMARKS.md records the sitting.
"""
import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

import numpy as np

from peers import Worker, calibrate, serve   # benchmarks/, the script's folder


def simulate(S, M, T, N, seed=0):
    """One-hot symbols (N, T * M) of a random chain with sticky transitions."""
    rng = np.random.default_rng(seed)
    A = np.full((S, S), 0.2 / max(S - 1, 1))
    np.fill_diagonal(A, 0.8)
    E = rng.dirichlet(np.ones(M), S)
    X = np.zeros((N, T * M), np.float32)
    z = rng.integers(0, S, N)
    for t in range(T):
        if t:
            z = (rng.random(N)[:, None] > np.cumsum(A[z], axis=1)).sum(1).clip(0, S - 1)
        x = (rng.random(N)[:, None] > np.cumsum(E[z], axis=1)).sum(1).clip(0, M - 1)
        X[np.arange(N), t * M + x] = 1.0
    return X


def ppl_program(S, M, T):
    import ppl
    from ppl.language import dist
    with ppl.Model(f"hmm_bench_{S}_{M}_{T}") as m:
        x = m.input("x", T * M)

        def step(z_prev, x_t):
            z = m.latent("z", dist.Categorical(logits=ppl.Affine(z_prev, S, name="trans")), guide="enumerate")
            m.observe("sym", dist.Categorical(logits=ppl.Affine(z, M, name="emit")), x_t)
            return z, None
        ppl.scan(step, ppl.const(0.0, S), xs=x, length=T)
    return m.compile(dtype=np.float32)


def jax_ways(S, M, T, X):
    """{"jax_jit": run(n)}: n gradients of the mean -log p(x), one jitted call each."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp
    xs = jnp.asarray(X.reshape(len(X), T, M).argmax(-1).T)      # (T, N) symbols
    rng = np.random.default_rng(1)
    params = {k: jnp.asarray(rng.normal(0, 0.5, s).astype(np.float32))
              for k, s in (("tW", (S, S)), ("tb", (S,)), ("eW", (S, M)), ("eb", (M,)))}

    def nll(p):
        A = jax.nn.log_softmax(p["tW"] + p["tb"], axis=1)         # log p(z_t = k | z_{t-1} = j)
        E = jax.nn.log_softmax(p["eW"] + p["eb"], axis=1)         # log p(x | z = k)
        la = jax.nn.log_softmax(p["tb"])[None, :] + E[:, xs[0]].T  # the state before: zeros

        def one(la, x_t):
            return logsumexp(la[:, :, None] + A[None], axis=1) + E[:, x_t].T, None
        la, _ = jax.lax.scan(one, la, xs[1:])
        return -jnp.mean(logsumexp(la, axis=1))

    grad = jax.jit(jax.value_and_grad(nll))

    def run_jit(n):
        for _ in range(n):
            out = grad(params)
        jax.block_until_ready(out)

    return {"jax_jit": run_jit}


def _setup(shape, X, seconds):
    """The JAX ways of a case, compiled, and the calls of each that take about `seconds`."""
    ways = jax_ways(*shape, X)
    t0 = time.perf_counter()
    for run in ways.values():
        run(1)
        run(2)
    info = {"compile_s": time.perf_counter() - t0}
    return ways, {w: calibrate(run, seconds) for w, run in ways.items()}, info


def worker(conn, pinned):
    serve(conn, pinned, _setup)


def emit(case, way, value, baseline=None, **extra):
    rec = {"bench": "hmm", "case": case, "metric": f"us_per_gradient/{way}", "value": round(value, 2),
           "unit": "us", "baseline": None if baseline is None else round(baseline, 2),
           "ratio": None if baseline is None else round(baseline / value, 3), **extra}
    print(json.dumps(rec), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="3x4x50x200,3x4x200x1000")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--no-jax", action="store_true")
    a = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # the steady state: a new scan's first calls would run interpreted over its kernels until the step's
    # compile pays (ppl/runtime/first_steps.py); this times, and compiles at once, the compiled step
    os.environ.setdefault("PPL_FIRST_STEPS", "0")
    no_jax = a.no_jax or importlib.util.find_spec("jax") is None
    ctx = mp.get_context("spawn")
    workers = [] if no_jax else [Worker(ctx, worker, False), Worker(ctx, worker, True)]
    try:
        for case in a.cases.split(","):
            S, M, T, N = (int(v) for v in case.split("x"))
            X = simulate(S, M, T, N)
            t0 = time.perf_counter()
            prog = ppl_program(S, M, T)
            prog.grad({"x": X})
            compile_s = time.perf_counter() - t0
            n = calibrate(lambda k: [prog.grad({"x": X}) for _ in range(k)], a.seconds)
            info = {w.suffix: w.call("setup", (S, M, T), X, a.seconds) for w in workers}
            times = {"ppl": []}
            for _ in range(a.rounds):
                t0 = time.perf_counter()
                for _ in range(n):
                    prog.grad({"x": X})
                times["ppl"].append((time.perf_counter() - t0) / n * 1e6)
                for w in workers:
                    times.setdefault("jax_jit" + w.suffix, []).append(w.call("run", "jax_jit"))
            med = {k: statistics.median(v) for k, v in times.items()}
            emit(case, "ppl", med["ppl"], compile_s=round(compile_s, 2))
            for k, v in med.items():
                if k != "ppl":
                    emit(case, k, v, compile_s=round(info["_pinned" if k.endswith("_pinned") else ""]["compile_s"], 2))
            if len(med) > 1:
                best = min((v, k) for k, v in med.items() if k != "ppl")
                emit(case, "ppl_against_jax_best", med["ppl"], baseline=best[0], jax_best=best[1])
    finally:
        for w in workers:
            w.stop()


if __name__ == "__main__":
    sys.exit(main())
