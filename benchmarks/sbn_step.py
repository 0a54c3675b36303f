"""SBN 64-32 training step: our fused step (gradient + Adam) vs a vectorised NumPy
implementation of the same step, alternating in one run; compile time reported apart.

    OPENBLAS_NUM_THREADS=1 python benchmarks/sbn_step.py [--quick]

Prints one JSON line per measurement:
{"bench","case","metric","value","unit","baseline","ratio"} where ratio = baseline / ours
(> 1 means we are faster). For `score_ma` (score function + moving-average baseline) the
baseline is the NumPy step with the same estimator; for the other estimators it is our own
`score_ma` step at the same batch, so the ratio is the relative cost of the estimator. The model is the README's SBN: q(h|x) = Bernoulli(enc(x)),
costs log q(h|x) - log p(h) - log p(x|h), on the binarized digits.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from peers import build_sbn  # noqa: E402  (benchmarks/, the script's folder)

BUILD = """
import numpy as np, ppl
from ppl import Model, Affine, Bernoulli
def build(nx=64, nh=32):
    with Model("sbn_bench") as m:
        x = m.input("x", nx)
        h = Bernoulli("h", logits=Affine(x, nh, name="enc"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", nh), target=h))
        m.cost("recon", ppl.bernoulli_nll(Affine(h, nx, name="dec"), target=x))
    return m
"""
exec(BUILD)  # defines build() here and in the compile-time subprocesses alike


def emit(case, metric, value, unit, baseline=None):
    ratio = None if baseline is None else baseline / value
    print(json.dumps({"bench": "sbn_step", "case": case, "metric": metric, "value": round(value, 3), "unit": unit,
                      "baseline": None if baseline is None else round(baseline, 3),
                      "ratio": None if ratio is None else round(ratio, 2)}), flush=True)


def load_data():
    from ppl.training.data import digits
    return digits()["train_x"].astype(np.float32)


class NumpySBN:
    """The same step in vectorised NumPy (score function + moving-average baseline + Adam)."""

    def __init__(self, prog):
        p = prog.params
        self.P = {k: np.array(p[k], dtype=np.float32) for k in p}
        self.m = {k: np.zeros_like(v) for k, v in self.P.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.P.items()}
        self.t, self.ma, self.rng = 0, 0.0, np.random.default_rng(0)

    def step(self, x):
        P = self.P
        a = x @ P["enc.W"] + P["enc.b"]
        u = self.rng.random(a.shape, dtype=np.float32)
        sa = 1 / (1 + np.exp(-a))
        h = (u < sa).astype(np.float32)
        logq = (h * a - np.logaddexp(0, a)).sum(1)
        prior = (np.logaddexp(0, P["prior"]) - h * P["prior"]).sum(1)
        d = h @ P["dec.W"] + P["dec.b"]
        rec = (np.logaddexp(0, d) - x * d).sum(1)
        L = logq + prior + rec
        B = x.shape[0]
        w = (L - self.ma) / B
        self.ma = 0.9 * self.ma + 0.1 * L.mean()
        gd = (1 / (1 + np.exp(-d)) - x) / B
        G = {"dec.W": h.T @ gd, "dec.b": gd.sum(0),
             "prior": ((1 / (1 + np.exp(-P["prior"]))) - h).sum(0) / B}
        ga = (h - sa) * (w[:, None] + 1 / B)
        G["enc.W"], G["enc.b"] = x.T @ ga, ga.sum(0)
        self.t += 1
        for k, g in G.items():
            self.m[k] = 0.9 * self.m[k] + 0.1 * g
            self.v[k] = 0.999 * self.v[k] + 0.001 * g * g
            P[k] -= 1e-3 * (self.m[k] / (1 - 0.9 ** self.t)) / (np.sqrt(self.v[k] / (1 - 0.999 ** self.t)) + 1e-8)
        return L.mean()


def compile_seconds(warm_dir=None):
    """Seconds to build + compile + run one step in a fresh process (cold: empty cache)."""
    code = BUILD + """
import time, numpy as np
t = time.perf_counter()
prog = build().compile(dtype=np.float32)
prog.grad({"x": np.zeros((2, 64), np.float32)})
print(time.perf_counter() - t)
"""
    env = dict(os.environ)
    d = warm_dir or tempfile.mkdtemp()
    env["PPL_CACHE_DIR"] = d
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]), d


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--estimators", default="score_ma,straight_through,concrete,disarm,rebar,relax")
    args = ap.parse_args()
    reps = 5 if args.quick else 21
    import numba
    from ppl.kernels.cpu.core import adam_update

    X = load_data()
    auto_times = {}
    ests = args.estimators.split(",")
    if "score_ma" not in ests:
        ests.insert(0, "score_ma")
    for est in ests:
        spec = ("score", {"baseline": "moving_average"}) if est == "score_ma" else est
        prog = build_sbn().compile(estimators=spec, dtype=np.float32)
        m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
        ref = NumpySBN(prog)

        for batch in (1, 32, 256):
            x = X[:batch]
            theta, grad, state, ws2, ws1, inputs, B = prog.args({"x": x})
            entry = prog.entry

            @numba.njit
            def ours(n, t0, theta, grad, state, ws2, ws1, inputs, B, m, v):
                for t in range(t0, t0 + n):
                    entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(0), t, 1)
                    adam_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, t + 1)

            n = max(20, 20000 // batch) if not args.quick else max(5, 2000 // batch)
            ours(2, 0, theta, grad, state, ws2, ws1, inputs, B, m, v)  # compile the loop
            t_ours, t_np = [], []
            for r in range(reps):
                t0 = time.perf_counter()
                ours(n, 2 + r * n, theta, grad, state, ws2, ws1, inputs, B, m, v)
                t_ours.append((time.perf_counter() - t0) / n * 1e6)
                if est == "score_ma":
                    nn = max(5, n // 10)
                    t0 = time.perf_counter()
                    for _ in range(nn):
                        ref.step(x)
                    t_np.append((time.perf_counter() - t0) / nn * 1e6)
            case = f"{est}/batch={batch}"
            if est == "score_ma":
                auto_times[batch] = t_ours
                base = t_np
            else:
                base = auto_times[batch]
            emit(case, "median_step_us", float(np.median(t_ours)), "us", float(np.median(base)))
            emit(case, "p90_step_us", float(np.percentile(t_ours, 90)), "us", float(np.percentile(base, 90)))
    cold, d = compile_seconds()
    warm, _ = compile_seconds(d)
    emit("auto", "compile_cold_s", cold, "s")
    emit("auto", "ready_warm_cache_s", warm, "s", cold)
    emit("-", "numba_threads", float(numba.get_num_threads()), "threads")


if __name__ == "__main__":
    main()
