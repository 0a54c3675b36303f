"""Our fused step vs PyTorch and Pyro on the same model / estimator / sizes / data, alternating
repetitions in ONE process (the peer side). See benchmarks/README.md.

    OPENBLAS_NUM_THREADS=1 python benchmarks/peers.py [--quick] [--check] [--cases sbn,pyro,vae,toy,compile,quality]
                                                      [--budget 10] [--torch-threads 1] [--numba-threads N]

One JSON line per measurement: {"bench","case","metric","value","unit","baseline","ratio","peer","threads"}.
value is ours, baseline the peer's, ratio = peer / ours (> 1: we are faster) for times; for the
test ELBO (higher is better) ratio is null and "diff" = ours - peer in nats. A peer that is not
installed gives one line with metric "skipped" and the reason.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl import Affine, Bernoulli, Model  # noqa: E402
from ppl.kernels.cpu.core import adam_update  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

THREADS = {}
SBN_ESTIMATORS = [("score_ma", ("score", {"baseline": "moving_average"}), "score"),
                  ("straight_through", "straight_through", "straight_through"),
                  ("concrete", ("concrete", {"temperature": 0.5}), "concrete"),
                  ("rebar", ("rebar", {"train": True}), "rebar"),   # eta and temperature, as the torch side
                  ("disarm", "disarm", "disarm")]
BATCHES = (1, 32, 256)


def build_sbn(nx=64, nh=32):
    """The SBN of benchmarks/sbn_step.py: entropy + prior + reconstruction costs."""
    with Model("sbn_bench") as m:
        x = m.input("x", nx)
        h = Bernoulli("h", logits=Affine(x, nh, name="enc"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", nh), target=h))
        m.cost("recon", ppl.bernoulli_nll(Affine(h, nx, name="dec"), target=x))
    return m


def emit(case, metric, value, unit, baseline=None, peer=None, ratio="auto", **extra):
    if ratio == "auto":
        ratio = None if baseline is None or not value else baseline / value
    rec = {"bench": "peers", "case": case, "metric": metric,
           "value": None if value is None else round(float(value), 4), "unit": unit,
           "baseline": None if baseline is None else round(float(baseline), 4),
           "ratio": None if ratio is None else round(float(ratio), 3), "peer": peer, "threads": THREADS}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def skipped(case, peer, reason):
    print(json.dumps({"bench": "peers", "case": case, "metric": "skipped", "value": None, "unit": None,
                      "baseline": None, "ratio": None, "peer": peer, "threads": THREADS, "reason": reason}),
          flush=True)


def have(mod):
    try:
        __import__(mod)
        return None
    except Exception as e:  # noqa: BLE001
        return f"{mod} not installed ({type(e).__name__}: {e}); pip install -e '.[bench]'"


# ---------------------------------------------------------------------------- our loops
@numba.njit
def ours_train(entry, n, t0, theta, grad, state, ws2, ws1, inputs, B, m, v):
    for t in range(t0, t0 + n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(0), t, 1)
        adam_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, t + 1)


@numba.njit
def ours_train_minibatch(entry, n, t0, X, order, theta, grad, state, ws2, ws1, inputs, B, m, v):
    """Steps t0 .. t0+n-1, step t on rows order[(t*B + i) % len(order)] of X, copied into the
    program's own input buffer."""
    xb = inputs[0]
    L = order.shape[0]
    for t in range(t0, t0 + n):
        for i in range(B):
            xb[i, :] = X[order[(t * B + i) % L]]
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(7), t, 1)
        adam_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, t + 1)


@numba.njit
def ours_estimates(entry, n, t0, theta, grad, state, ws2, ws1, inputs, B):
    acc = 0.0
    for t in range(t0, t0 + n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(3), t, 1)
        acc += grad[0]
    return acc


def calibrate(fn, target):
    """Repetitions of fn(n) so that one takes about `target` seconds."""
    n = 1
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt > target / 4 or n > 10 ** 7:
            return max(1, int(n * target / max(dt, 1e-9)))
        n *= 4


class Worker:
    """A peer's worker process running `target(conn, pinned)` (a module-level function: a loop that
    answers ("ok", result) or ("error", traceback) to each message), pinned to one core by the
    target itself where `pinned`; `suffix` names its ways ("_pinned" or "")."""

    def __init__(self, ctx, target, pinned):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, pinned), daemon=True)
        self.proc.start()
        self.suffix = "_pinned" if pinned else ""

    def call(self, *msg):
        self.conn.send(msg)
        status, out = self.conn.recv()
        if status != "ok":
            raise RuntimeError(out)
        return out

    def stop(self):
        self.conn.send(("stop",))
        self.proc.join(10)


def serve(conn, pinned, setup):
    """A Worker's loop (its target calls it): pinned to one core first where `pinned` (before JAX
    starts its thread pools); ("setup", *args) -> setup(*args) = ({way: run(n)}, {way: n}, info),
    answered info; ("run", way) -> run(n) timed, answered us per call; ("stop",) ends it. An error
    is answered ("error", traceback)."""
    import traceback
    if pinned:
        os.sched_setaffinity(0, {0})
    ways, steps = {}, {}
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "stop":
                return
            if msg[0] == "setup":
                ways, steps, info = setup(*msg[1:])
                conn.send(("ok", info))
            elif msg[0] == "run":
                t0 = time.perf_counter()
                ways[msg[1]](steps[msg[1]])
                conn.send(("ok", (time.perf_counter() - t0) / steps[msg[1]] * 1e6))
        except Exception:  # noqa: BLE001 - reported by the parent
            conn.send(("error", traceback.format_exc(limit=3)))


def steps_for(fn, seconds, probe=200):
    """Steps n so that fn(n) takes about `seconds` (from one timed fn(probe); fn warm), >= 50."""
    t0 = time.perf_counter()
    fn(probe)
    return max(50, int(probe * seconds / (time.perf_counter() - t0)))


def median_rounds(runners, n, rounds):
    """runners: {name: fn(n)}, each run with the same n in `rounds` alternating rounds;
    returns {name: median us per step}."""
    out = {k: [] for k in runners}
    for _ in range(rounds):
        for k, f in runners.items():
            t0 = time.perf_counter()
            f(n)
            out[k].append((time.perf_counter() - t0) / n * 1e6)
    return {k: float(np.median(v)) for k, v in out.items()}


def alternate(runners, reps, target):
    """runners: {name: fn(n)}; returns {name: [per-call us]} over `reps` alternating repetitions."""
    ns = {k: calibrate(f, target) for k, f in runners.items()}
    out = {k: [] for k in runners}
    for _ in range(reps):
        for k, f in runners.items():
            t0 = time.perf_counter()
            f(ns[k])
            out[k].append((time.perf_counter() - t0) / ns[k] * 1e6)
    return out


def report_times(case, times, ours="ours", unit="us", scale=1.0, metric="step"):
    o = np.asarray(times[ours]) * scale
    for peer, t in times.items():
        if peer == ours:
            continue
        t = np.asarray(t) * scale
        emit(case, f"median_{metric}_{unit}", np.median(o), unit, np.median(t), peer)
        emit(case, f"p90_{metric}_{unit}", np.percentile(o, 90), unit, np.percentile(t, 90), peer)
    if len(times) == 1:
        emit(case, f"median_{metric}_{unit}", np.median(o), unit)
        emit(case, f"p90_{metric}_{unit}", np.percentile(o, 90), unit)


def sgemm_rate(size=256, reps=30):
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)
    c = np.empty_like(a)
    for _ in range(3):
        np.matmul(a, b, out=c)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(5):
            np.matmul(a, b, out=c)
        ts.append((time.perf_counter() - t0) / 5)
    return 2.0 * size ** 3 / np.median(ts), 2.0 * size ** 3 / np.min(ts)


def sbn_flops(B, nx=64, nh=32):
    """The four matrix products of a step: x@enc.W, h@dec.W (forward), h^T@g_d, x^T@g_a
    (weight gradients), 2*B*nx*nh FLOPs each."""
    return 4 * 2 * B * nx * nh


# ---------------------------------------------------------------------------- cases
def case_sbn(args, X, torch_ok, pyro_ok, gflops):
    reps, target = (3, 0.02) if args.quick else (15, 0.15)
    if torch_ok:
        import torch
        from torch_models import TorchSBN, pyro_sbn_svi
    for label, spec, tname in SBN_ESTIMATORS:
        prog = build_sbn().compile(estimators=spec, dtype=np.float32)
        init = {k: np.array(v) for k, v in prog.params.items()}
        m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
        for B in BATCHES:
            x = np.ascontiguousarray(X[:B])
            a = prog.args({"x": x})
            tstep = [2]
            ours_train(prog.entry, 2, 0, *a, m, v)

            def run_ours(n, a=a):
                ours_train(prog.entry, n, tstep[0], *a, m, v)
                tstep[0] += n

            runners = {"ours": run_ours}
            case = f"sbn/{label}/batch={B}"
            if torch_ok:
                tm = TorchSBN(init, tname, lr=1e-3, temperature=0.5)
                xt = torch.from_numpy(x)
                for _ in range(3):
                    tm.step(xt)

                def run_torch(n, tm=tm, xt=xt):
                    for _ in range(n):
                        tm.step(xt)
                runners["torch"] = run_torch
            else:
                skipped(case, "torch", have("torch"))
            pyro_here = label == "score_ma" and B == 32 and "pyro" in args.cases
            if pyro_here and pyro_ok:
                for bl in (True, False):
                    svi = pyro_sbn_svi(init, lr=1e-3, baseline=bl)
                    for _ in range(3):
                        svi.step(xt)

                    def run_pyro(n, svi=svi, xt=xt):
                        for _ in range(n):
                            svi.step(xt)
                    # one SVI object per baseline setting; only one pyro param store at a time
                    times = alternate({"ours": run_ours, "pyro": run_pyro}, max(3, reps // 3), target)
                    times[f"pyro_tracegraph_{'avg_baseline' if bl else 'no_baseline'}"] = times.pop("pyro")
                    report_times(f"pyro/score_ma/batch={B}", times)
            elif pyro_here:
                skipped(f"pyro/score_ma/batch={B}", "pyro", have("pyro"))
            times = alternate(runners, reps, target)
            report_times(case, times)
            med = np.median(times["ours"]) * 1e-6
            fl = sbn_flops(B)
            if label == "score_ma":
                emit(f"sbn/batch={B}", "flops_per_step", fl, "flop")
            emit(case, "sgemm_fraction", fl / med / gflops, "fraction", None, None,
                 gflops_ours=round(fl / med / 1e9, 3), sgemm_gflops=round(gflops / 1e9, 2))


def case_vae(args, X, torch_ok):
    reps, target = (3, 0.02) if args.quick else (15, 0.15)
    from ppl.models import gaussian_vae
    prog = gaussian_vae.build().compile(dtype=np.float32)
    init = {k: np.array(v) for k, v in prog.params.items()}
    m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    if torch_ok:
        import torch
        from torch_models import TorchGaussianVAE
    for B in BATCHES:
        x = np.ascontiguousarray(X[:B])
        a = prog.args({"x": x})
        tstep = [2]
        ours_train(prog.entry, 2, 0, *a, m, v)

        def run_ours(n, a=a):
            ours_train(prog.entry, n, tstep[0], *a, m, v)
            tstep[0] += n
        runners = {"ours": run_ours}
        case = f"gaussian_vae/pathwise/batch={B}"
        if torch_ok:
            tm = TorchGaussianVAE(init, lr=1e-3)
            xt = torch.from_numpy(x)
            for _ in range(3):
                tm.step(xt)

            def run_torch(n, tm=tm, xt=xt):
                for _ in range(n):
                    tm.step(xt)
            runners["torch"] = run_torch
        else:
            skipped(case, "torch", have("torch"))
        report_times(case, alternate(runners, reps, target))


def case_toy(args, torch_ok):
    reps, target = (3, 0.02) if args.quick else (15, 0.15)
    from ppl.models import toy_bernoulli
    if torch_ok:
        from torch_models import TorchToy
    for est in ("score", "disarm", "relax"):
        prog = toy_bernoulli.build(t=0.501).compile(estimators=est, dtype=np.float32)
        a = prog.args(batch=1)
        ours_estimates(prog.entry, 2, 0, *a)
        tstep = [2]

        def run_ours(n, a=a):
            ours_estimates(prog.entry, n, tstep[0], *a)
            tstep[0] += n
        runners = {"ours": run_ours}
        if "row-fused" in prog.explain():   # the same step through array kernels, as a baseline
            progA = toy_bernoulli.build(t=0.501).compile(estimators=est, dtype=np.float32, lowering="arrays")
            aA = progA.args(batch=1)
            ours_estimates(progA.entry, 2, 0, *aA)

            def run_arrays(n, aA=aA, progA=progA):
                ours_estimates(progA.entry, n, 0, *aA)
            runners["array_lowering"] = run_arrays
        case = f"toy/{est}"
        if torch_ok:
            tm = TorchToy(est, t=0.501)

            def run_torch(n, tm=tm):
                for _ in range(n):
                    tm.estimate()
            runners["torch"] = run_torch
        else:
            skipped(case, "torch", have("torch"))
        report_times(case, alternate(runners, reps, target), unit="ns", scale=1e3, metric="estimate")


COMPILE_CODE = """
import time
t0 = time.perf_counter()
import sys, numpy as np
sys.path.insert(0, {here!r})
import peers
t1 = time.perf_counter()
prog = peers.build_sbn().compile(estimators=("score", {{"baseline": "moving_average"}}), dtype=np.float32)
prog.grad({{"x": np.zeros((2, 64), np.float32)}})
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def case_compile(args):
    d = tempfile.mkdtemp(prefix="ppl_peers_compile_")
    env = dict(os.environ, PPL_CACHE_DIR=os.path.join(d, "ppl"), NUMBA_CACHE_DIR=os.path.join(d, "numba"))
    res = {}
    for kind in ("cold", "warm"):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COMPILE_CODE.format(here=HERE)], env=env,
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        imp, comp = map(float, out.stdout.strip().splitlines()[-1].split())
        res[kind] = (imp, comp, wall)
    emit("compile/sbn/score_ma", "compile_cold_s", res["cold"][1], "s", extra_note="build+compile+first step, "
         "fresh PPL_CACHE_DIR and NUMBA_CACHE_DIR, import excluded", import_s=round(res["cold"][0], 3),
         process_wall_s=round(res["cold"][2], 3))
    emit("compile/sbn/score_ma", "ready_warm_cache_s", res["warm"][1], "s", res["cold"][1], None,
         extra_note="same dirs, fresh process; ratio = cold / warm", import_s=round(res["warm"][0], 3),
         process_wall_s=round(res["warm"][2], 3))


class _Shim:
    """Enough of a Program for models/sbn.py's evaluate (params + model.config)."""

    def __init__(self, params, config):
        self.params = params
        self.model = type("M", (), {"config": config})()


def case_quality(args, torch_ok):
    from ppl.models import sbn
    if not torch_ok:
        skipped("quality/sbn", "torch", have("torch"))
        return
    import torch
    from torch_models import TorchSBN
    budget = args.budget
    d = sbn.data()
    Xtr = np.ascontiguousarray(d["train"]["x"], dtype=np.float32)
    rng = np.random.default_rng(0)
    order = np.concatenate([rng.permutation(len(Xtr)) for _ in range(64)]).astype(np.int64)
    Xt = torch.from_numpy(Xtr)
    B = 32
    slice_s = min(0.5, budget / 4)
    for label, spec, tname in SBN_ESTIMATORS[:2]:
        prog = sbn.build(latent=(32,)).compile(estimators=spec, dtype=np.float32)
        init = {k: np.array(v) for k, v in prog.params.items()}
        tinit = {"enc.W": init["q1.W"], "enc.b": init["q1.b"], "dec.W": init["p0.W"], "dec.b": init["p0.b"],
                 "prior": init["prior"]}
        tm = TorchSBN(tinit, tname, lr=1e-3, seed=7)
        m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
        buf = np.zeros((B, 64), np.float32)
        a = prog.args({"x": buf})
        # compile the loop outside the budget, then restore the initial point
        ours_train_minibatch(prog.entry, 1, 0, Xtr, order, *a, m, v)
        for k in init:
            prog.params[k] = init[k]
        prog.state[:] = 0
        m[:] = 0
        v[:] = 0
        tm_time = ours_time = 0.0
        ours_steps = torch_steps = 0
        n_ours = 64
        while ours_time < budget or tm_time < budget:
            if ours_time < budget:
                t0 = time.perf_counter()
                ours_train_minibatch(prog.entry, n_ours, ours_steps, Xtr, order, *a, m, v)
                dt = time.perf_counter() - t0
                ours_time += dt
                ours_steps += n_ours
                n_ours = max(1, int(n_ours * min(4.0, min(slice_s, budget - ours_time + 1e-3) / max(dt, 1e-6))))
            if tm_time < budget:
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < slice_s and tm_time + time.perf_counter() - t0 < budget:
                    k = torch_steps
                    idx = torch.from_numpy(order[[(k * B + i) % len(order) for i in range(B)]])
                    tm.step(Xt[idx])
                    torch_steps += 1
                tm_time += time.perf_counter() - t0
        ev_ours = sbn.evaluate(prog, d)["test_elbo"]
        tp = tm.numpy_params()
        shim = _Shim({"q1.W": tp["enc.W"], "q1.b": tp["enc.b"], "p0.W": tp["dec.W"], "p0.b": tp["dec.b"],
                      "prior": tp["prior"]}, prog.model.config)
        ev_torch = sbn.evaluate(shim, d)["test_elbo"]
        emit(f"quality/sbn/{label}/batch={B}", "test_elbo", ev_ours, "nats", ev_torch, "torch", ratio=None,
             diff=round(ev_ours - ev_torch, 3), budget_s=budget, steps_ours=ours_steps, steps_peer=torch_steps,
             train_s_ours=round(ours_time, 2), train_s_peer=round(tm_time, 2))


# ---------------------------------------------------------------------------- --check
def case_check(args, X, torch_ok):
    """Mean of our estimate vs the torch estimate on one fixed batch (no update), per parameter:
    z = (mean_ours - mean_torch) / stderr. Expect |z| mostly < 3 (max over many entries ~4)."""
    if not torch_ok:
        skipped("check", "torch", have("torch"))
        return
    import torch
    from ppl.models import gaussian_vae
    from torch_models import TorchGaussianVAE, TorchSBN
    N = 400 if args.quick else 3000
    B = 32
    x = np.ascontiguousarray(X[:B])
    xt = torch.from_numpy(x)
    tnames = {"enc.W": "enc.W", "enc.b": "enc.b", "dec.W": "dec.W", "dec.b": "dec.b", "prior": "prior",
              "rebar.h.eta": "eta", "rebar.h.log_temperature": "loglam"}
    cases = [(lab, (lambda s=spec: build_sbn().compile(estimators=s, dtype=np.float32)),
              (lambda init, t=tn: TorchSBN(init, t, seed=1))) for lab, spec, tn in SBN_ESTIMATORS]
    cases.append(("gaussian_vae", lambda: gaussian_vae.build().compile(dtype=np.float32),
                  lambda init: TorchGaussianVAE(init, seed=1)))
    for label, mk_prog, mk_torch in cases:
        prog = mk_prog()
        init = {k: np.array(v) for k, v in prog.params.items()}
        tm = mk_torch(init)
        go, gt, lo, lt = {}, {}, [], []
        for s in range(N):
            loss, g = prog.grad({"x": x}, seed=1000 + s)
            lo.append(loss)
            for k, val in g.items():
                go.setdefault(k, []).append(val.ravel().astype(np.float64))
            for p in tm.opt.param_groups[0]["params"]:
                p.grad = None
            lt.append(tm.grads(xt))
            named = dict(tm.P)
            if hasattr(tm, "eta"):
                named["eta"], named["loglam"] = tm.eta, tm.loglam
            for k in g:
                tk = tnames.get(k, k)
                gt.setdefault(k, []).append(named[tk].grad.detach().double().numpy().ravel().copy())
        for k in go:
            a_, b_ = np.array(go[k]), np.array(gt[k])
            se = np.sqrt(a_.var(0, ddof=1) / N + b_.var(0, ddof=1) / N) + 1e-12
            z = (a_.mean(0) - b_.mean(0)) / se
            rel = np.linalg.norm(a_.mean(0) - b_.mean(0)) / (np.linalg.norm(a_.mean(0)) + 1e-12)
            note = None
            if k.startswith("rebar."):
                note = ("different definitions: ours trains eta / log lam on the variance of the REBAR part "
                        "of g_a with a forward difference for lam; torch on the full g_a, exact double backward")
            emit(f"check/{label}/batch={B}", f"grad_mean_z[{k}]", float(np.max(np.abs(z))), "max|z|", None, "torch",
                 ratio=None, frac_abs_z_gt_3=round(float(np.mean(np.abs(z) > 3)), 4), entries=int(z.size),
                 rel_diff_of_means=round(float(rel), 4), draws=N, note=note)
        lo, lt = np.array(lo), np.array(lt)
        z = (lo.mean() - lt.mean()) / math.sqrt(lo.var(ddof=1) / N + lt.var(ddof=1) / N + 1e-30)
        emit(f"check/{label}/batch={B}", "loss_mean", float(lo.mean()), "nats", float(lt.mean()), "torch", ratio=None,
             z=round(float(z), 2), draws=N)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (under a minute)")
    ap.add_argument("--check", action="store_true", help="only check that the torch estimators agree in mean")
    ap.add_argument("--cases", default=None, help="comma list (default: all; --quick leaves out compile)")
    ap.add_argument("--budget", type=float, default=None, help="quality case: training seconds per side (10)")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--numba-threads", type=int, default=None, help="default: numba's default")
    args = ap.parse_args()
    quick_skips_compile = args.quick and args.cases is None
    args.cases = (args.cases or ("sbn,pyro,vae,toy,quality" if args.quick else "sbn,pyro,vae,toy,compile,quality")).split(",")
    if args.budget is None:
        args.budget = 1.0 if args.quick else 10.0
    if args.numba_threads:
        numba.set_num_threads(args.numba_threads)
    torch_reason, pyro_reason = have("torch"), have("pyro")
    torch_ok, pyro_ok = torch_reason is None, pyro_reason is None and torch_reason is None
    THREADS.update({"ours_numba": numba.get_num_threads(),
                    "openblas_env": os.environ.get("OPENBLAS_NUM_THREADS")})
    versions = {"numba": numba.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    if torch_ok:
        import torch
        torch.set_num_threads(args.torch_threads)
        THREADS["torch"] = torch.get_num_threads()
        versions["torch"] = torch.__version__
    if pyro_ok:
        import pyro
        versions["pyro"] = pyro.__version__
    print(json.dumps({"bench": "peers", "case": "-", "metric": "versions", "value": versions, "threads": THREADS,
                      "cpus": os.cpu_count()}), flush=True)
    if not torch_ok:
        skipped("all", "torch", torch_reason)
    if not pyro_ok:
        skipped("pyro", "pyro", pyro_reason or "needs torch")
    X = ppl.data.digits()["train_x"].astype(np.float32)
    if args.check:
        case_check(args, X, torch_ok)
        return
    med, peak = sgemm_rate(reps=10 if args.quick else 30)
    emit("-", "sgemm_1thread_256", med / 1e9, "GFLOP/s", extra_note="numpy float32 256x256x256, median",
         peak_gflops=round(peak / 1e9, 2))
    if "sbn" in args.cases or "pyro" in args.cases:
        case_sbn(args, X, torch_ok, pyro_ok, med)
    if "vae" in args.cases:
        case_vae(args, X, torch_ok)
    if "toy" in args.cases:
        case_toy(args, torch_ok)
    if "compile" in args.cases:
        case_compile(args)
    elif quick_skips_compile:
        skipped("compile/sbn/score_ma", None, "--quick leaves out the cold compile (~15 s); add --cases ...,compile")
    if "quality" in args.cases:
        case_quality(args, torch_ok)


if __name__ == "__main__":
    main()
