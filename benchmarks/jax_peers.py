"""`ppl.fit` against the same SBN trained as a competent JAX user would: the whole training
step (the estimator's surrogate, its gradient, optax Adam) in one `jax.jit`, called per step,
and N steps in one `jax.lax.scan`; alternating rounds in one process, medians.

    pip install jax optax
    OPENBLAS_NUM_THREADS=1 python benchmarks/jax_peers.py [--rounds 7] [--batches 1,32,256]

Model: the 64-32 linear SBN of benchmarks/peers.py on the digits (float32): q(h|x) = Bern(
sigmoid(x W_e + b_e)), p(h) = Bern(sigmoid(prior)), p(x|h) = Bern(sigmoid(h W_d + b_d)); cost
per row f = log q(h|x) - log p(h) - log p(x|h). Estimators for the encoder:
  score            the score function with a moving-average baseline (decay 0.9)
  straight_through h = hard + sigmoid(l) - stop_gradient(sigmoid(l))
Batches: the same rows as fit (its permutation per epoch), gathered inside the step.
One JSON line per (estimator, batch): value = our us per step through ppl.fit, baseline = the
faster JAX loop (jit per call or lax.scan), ratio = baseline / value (> 1: we are faster), and
both JAX figures. XLA runs with its default threads here (not pinned to one core).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.data import Batches  # noqa: E402
from ppl.fit import fit  # noqa: E402
from ppl.models import sbn  # noqa: E402
from peers import build_sbn, median_rounds, steps_for  # noqa: E402  (benchmarks/, the script's folder)


def jax_trainer(estimator, init, X, order, B, lr=1e-3):
    """(step_fn(n) running n jitted steps one call each, scan_fn(n) running n steps in one scan)."""
    import jax
    import jax.numpy as jnp
    import optax

    sp = jax.nn.softplus
    opt = optax.adam(lr)
    Xj, orderj = jnp.asarray(X), jnp.asarray(order)

    def costs(p, x, h, logits):
        logq = jnp.sum(h * logits - sp(logits), axis=1)
        prior = jnp.sum(sp(p["prior"]) - h * p["prior"], axis=1)
        d = h @ p["dec.W"] + p["dec.b"]
        recon = jnp.sum(sp(d) - x * d, axis=1)
        return logq + prior + recon, logq

    def surrogate(p, x, key, base):
        logits = x @ p["enc.W"] + p["enc.b"]
        s = jax.nn.sigmoid(logits)
        hard = (jax.random.uniform(key, logits.shape) < s).astype(x.dtype)
        if estimator == "straight_through":
            h = hard + s - jax.lax.stop_gradient(s)
            f, _ = costs(p, x, h, logits)
            return jnp.mean(f), jnp.mean(f)
        f, logq = costs(p, x, hard, logits)
        return jnp.mean(f + jax.lax.stop_gradient(f - base) * logq), jnp.mean(f)

    def one(carry, t):
        p, ost, base, key = carry
        rows = jax.lax.dynamic_slice(orderj, (t * B,), (B,))
        x = Xj[rows]
        key, sub = jax.random.split(key)
        (_, f), g = jax.value_and_grad(surrogate, has_aux=True)(p, x, sub, base)
        upd, ost = opt.update(g, ost, p)
        p = optax.apply_updates(p, upd)
        return (p, ost, 0.9 * base + 0.1 * f, key), f

    p0 = {k: jnp.asarray(v) for k, v in init.items()}
    state = {"c": (p0, opt.init(p0), jnp.float32(0.0), jax.random.PRNGKey(0)), "t": 0}
    jstep = jax.jit(one)

    @jax.jit
    def scan_steps(carry, ts):
        return jax.lax.scan(one, carry, ts)

    def step_fn(n):
        c, t = state["c"], state["t"]
        for k in range(n):
            c, f = jstep(c, (t + k) % (len(order) // B))
        jax.block_until_ready(c)
        state["c"], state["t"] = c, t + n

    scan_cache = {}

    def scan_fn(n):
        c, t = state["c"], state["t"]
        ts = jnp.asarray((np.arange(t, t + n) % (len(order) // B)).astype(np.int32))
        c, f = scan_steps(c, ts)
        jax.block_until_ready(c)
        state["c"], state["t"] = c, t + n
        scan_cache[n] = True

    return step_fn, scan_fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--estimators", default="score,straight_through")
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    try:
        import jax
        import optax  # noqa: F401  (checked here, used by jax_trainer)
    except ImportError as e:
        print(json.dumps({"bench": "jax_peers", "case": "all", "metric": "skipped", "value": None, "unit": None,
                          "baseline": None, "ratio": None, "reason": f"{e}; pip install jax optax"}))
        return
    print(json.dumps({"bench": "jax_peers", "case": "versions", "metric": "info", "value": None, "unit": None,
                      "baseline": None, "ratio": None, "jax": jax.__version__, "ppl": ppl.__version__,
                      "xla_devices": str(jax.devices())}), flush=True)
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    specs = {"score": ("score", {"baseline": "moving_average"}), "straight_through": "straight_through"}
    for est in args.estimators.split(","):
        for B in (int(b) for b in args.batches.split(",")):
            prog = build_sbn().compile(estimators=specs[est], dtype=np.float32)
            init = {k: np.array(v) for k, v in prog.params.items() if k in ("enc.W", "enc.b", "dec.W", "dec.b",
                                                                            "prior")}
            batches = Batches({"x": X}, B, seed=0, dtype=np.float32)
            epochs = 4
            order = batches.rows(0, epochs * batches.per_epoch)
            step_fn, scan_fn = jax_trainer(est, init, X, order, B)
            opt = ppl.optim.Adam(1e-3)

            def ours(n):
                fit(prog, {"x": X}, opt, steps=n, batch_size=B, progress=False, nopython=True)

            ways = {"ppl.fit": ours, "jax_jit": step_fn, "jax_scan": scan_fn}
            ours(2)   # compiles
            n = steps_for(ours, args.seconds)
            t0 = time.perf_counter()
            scan_fn(n)   # compiles the scan for this n
            step_fn(2)
            compile_s = time.perf_counter() - t0
            med = median_rounds(ways, n, args.rounds)
            best = min(med["jax_jit"], med["jax_scan"])
            print(json.dumps({"bench": "jax_peers", "case": f"sbn64-32/{est}/batch={B}", "metric": "us_per_step",
                              "value": round(med["ppl.fit"], 3), "unit": "us/step", "baseline": round(best, 3),
                              "ratio": round(best / med["ppl.fit"], 3), "jax_jit": round(med["jax_jit"], 3),
                              "jax_scan": round(med["jax_scan"], 3), "steps": n, "rounds": args.rounds,
                              "jax_compile_s": round(compile_s, 2)}), flush=True)


if __name__ == "__main__":
    main()
