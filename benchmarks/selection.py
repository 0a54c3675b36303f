"""The measured choice against the best built-in in hindsight and the rule table, problem by problem.

    OPENBLAS_NUM_THREADS=1 python benchmarks/selection.py [--problems mixed,sbn64,...] [--draws 200]

Per problem, in one sitting:
- every applicable unbiased built-in estimator fixed (at every stochastic node it applies to; the
  rule table's choice at the others), "in hindsight";
- the rule table's choice (policy "rules");
- the measured default (policy "measured", measured on the problem's first batch: what a user's
  first `grad` or `fit` does);
each compiled as its own program and measured the same way: the trace of the model-parameter
gradient's covariance over `--draws` estimates at the initial parameters (the estimators' state
warmed WARM_STEPS steps first, as ppl.diagnostics does), and the time per estimate of the raw step
in a nopython loop (every program timed once per round, rounds alternating, the median). The score
is variance x microseconds per estimate (lower is better); `ratio` is a choice's score over the best
one's. One JSON line per (problem, assignment), then one summary line per problem. The measured
default's own first-gradient cost is measured apart: `--first` runs, in fresh processes (kernels
cached), the first `grad` of a new model under the measured default and with its estimators fixed,
alternating, and the second `grad` (the measured default's first gradient comes from the rule
table's program while the choice is measured on a thread, its programs compiled there; the second
waits for what is left of it). `--train SECONDS` trains the 784-200 SBN and the Gaussian VAE for that wall time under
the rule table's choice and under the measured default (compile and measurements counted), from
the same initialisation, `--seeds` seeds, and reports each one's test ELBO.

Problems: the mixed program (10 Bernoulli units, one more Bernoulli, a Normal of both: StochasticAD's
tutorial program in ppl's terms), the bundled SBNs (64-32 on the 8 x 8 digits; 784-200 on the 5,000
MNIST digits of the `bench` extra), the Gaussian and categorical VAEs on the digits, the SIR epidemic and
the queue of benchmarks/simulations.py, and a Poisson regression with global latents; then problems the
measured choice was not tuned on: 5 Bernoulli units and a Poisson count behind a black box, a Binomial
count, a mixture of Gaussians with a categorical guide, and the inventory and branching simulations.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.pop("OPENBLAS_CORETYPE", None)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ppl  # noqa: E402
from ppl import Affine, Bernoulli, Model, dist  # noqa: E402
from ppl.estimators import REGISTRY  # noqa: E402
from ppl.runtime.diagnostics import WARM_STEPS, gradient_draws  # noqa: E402

ROUNDS = 5
BLOCK_SECONDS = 0.02


def mixed():
    with Model("sel_mixed") as m:
        x = m.input("x", 2)
        b = Bernoulli("b", logits=Affine(x, 10, name="pb"))
        c = Bernoulli("c", logits=Affine(x, 1, name="pc"))
        s = ppl.rowsum(b)
        n = ppl.Normal("n", loc=2.0 * s + 3.0 * c, scale=ppl.softplus(Affine(c, 1, name="sc")) + 0.1)
        m.cost("f", ppl.total(n * s * 0.1))
    return m, {"x": np.random.default_rng(0).normal(size=(32, 2))}, None


def poisson_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    k = rng.poisson(np.exp(x @ np.array([0.5, -0.3, 0.2]) + 0.1))[:, None].astype(float)
    with ppl.Model("sel_poisson") as m:
        xs, ks = m.input("x", 3), m.input("k", 1)
        beta = m.latent("beta", dist.Normal(0.0, 1.0), width=3)
        b = m.latent("b", dist.Normal(0.0, 1.0))
        with m.plate("data", size=500):
            m.observe("lik", dist.Poisson(ppl.exp(ppl.rowdot(xs, beta) + b)), ks)
    return m, {"x": x[:50], "k": k[:50]}, None


def blackbox(law):
    """A node behind a gradient-free black box (black_boxes.py: the rule table's stochastic
    derivatives): 5 Bernoulli units (32 values: enumeration is exact), or a Poisson count."""
    def make():
        import black_boxes
        return black_boxes.model(f"sel_blackbox_{law}", law), {"x": np.random.default_rng(1).normal(size=(32, 2))}, None
    return make


def binomial():
    """A Binomial(10) count feeding a Normal, the cost their product: stochastic derivatives' one
    jump per count against mvd's branches and the score function."""
    with Model("sel_binomial") as m:
        xs = m.input("x", 2)
        k = ppl.Binomial("k", total_count=10, logits=Affine(xs, 1, name="pk"))
        n = ppl.Normal("n", loc=k * 0.5, scale=1.0)
        m.cost("f", ppl.total(n * k))
    return m, {"x": np.random.default_rng(1).normal(size=(32, 2))}, None


def mixture():
    """A mixture of three Gaussians in one dimension, the guide q(z | x) a Categorical of 3 classes:
    enumeration is exact (the rule table's score function is not)."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-2, 1, (20, 1)), rng.normal(0, 1, (20, 1)), rng.normal(3, 1, (20, 1))])
    rng.shuffle(x)
    with Model("sel_mixture") as m:
        xs = m.input("x", 1)
        z = ppl.Categorical("z", logits=Affine(xs, 3, name="q"), classes=3)
        m.observe("lik", dist.Normal(Affine(z, 1, name="mu"), 1.0), xs)
        m.latent(z, dist.Categorical(logits=ppl.param("pi", 3, 0.0), classes=3))
    return m, {"x": x[:32]}, None


def bundled(name, **opts):
    def make():
        from ppl.models import get
        mod = get(name)
        return mod.build(**opts), {k: v[:32] for k, v in mod.data()["train"].items()}, None
    return make


def sbn784():
    from mnist_digits import mnist
    from ppl.models import sbn
    return sbn.build(latent=(200,), pixels=784), {"x": mnist()["train"]["x"][:50]}, None


def simulation(name, T=30, B=32):
    def make():
        import simulations as S
        m = getattr(S, f"{name}_ppl")(T, f"sel_{name}")
        return m, getattr(S, f"{name}_data")(B), None
    return make


PROBLEMS = {
    "mixed": mixed,
    "sbn64": bundled("sbn"),
    "sbn784": sbn784,
    "gaussian_vae": bundled("gaussian_vae"),
    "categorical_vae": bundled("categorical_vae"),
    "sir": simulation("sir"),
    "queue": simulation("queue"),
    "poisson_regression": poisson_regression,
    # problems the measured choice was not tuned on: nodes behind a black box, a count, a mixture
    "blackbox_bernoulli": blackbox("bernoulli"),
    "blackbox_poisson": blackbox("poisson"),
    "binomial": binomial,
    "mixture": mixture,
    "inventory": simulation("inventory"),
    "branching": simulation("branching"),
}


@numba.njit
def _steps(step, n, theta, grad, state, ws2, ws1, inputs, B, seed):
    for t in range(n):
        step(theta, grad, state, ws2, ws1, inputs, B, seed, t, 1)


def _runner(prog, data):
    args = prog.args(data) + (np.uint64(0),)
    prog.grad(data)
    typ = tuple(numba.typeof(a) for a in (prog.theta, prog.grad_buffer, prog.state, *args[3:6], args[6],
                                          np.uint64(0), np.int64(0), 1))
    if typ not in prog.entry.overloads:
        prog.entry.compile(typ)
    fn = numba.types.FunctionType(prog.entry.overloads[typ].signature)
    loop = _steps.compile((fn, numba.types.int64) + tuple(numba.typeof(a) for a in args))

    def run(n):
        state = prog.state.copy()
        loop(prog.entry, n, *args)
        prog.state[:] = state
    return run


def assignments(model, data):
    """{label: estimators spec} of every applicable unbiased built-in fixed where it applies."""
    rules = model.compile(policy="rules")
    base = {n.name: ch.estimator for n, (ch, _) in rules.choices.items()}
    out = {}
    for name, est in sorted(REGISTRY.items()):
        if not est.unbiased or not est.suggested:
            continue
        spec, used = dict(base), False
        for node, (ch, info) in rules.choices.items():
            if est.applies(info) is None:
                spec[node.name], used = name, True
        if used and spec != base:
            out[name] = spec
    return base, out


def measure(progs: dict, data, draws: int) -> dict:
    """{label: (variance, us per estimate)}: variance over `draws` draws (state warmed), time by
    alternating rounds of each program's nopython loop (median)."""
    out = {}
    runs, ns = {}, {}
    for label, p in progs.items():
        G = gradient_draws(p, data, draws, warm=WARM_STEPS)
        var = float(sum(v.reshape(draws, -1).var(0, ddof=1).sum() for v in G.values()))
        runs[label] = run = _runner(p, data)
        run(2)
        t0 = time.perf_counter()
        run(3)
        ns[label] = max(1, int(BLOCK_SECONDS / max((time.perf_counter() - t0) / 3, 1e-7)))
        out[label] = [var, []]
    for _ in range(ROUNDS):
        for label, run in runs.items():
            t0 = time.perf_counter()
            run(ns[label])
            out[label][1].append((time.perf_counter() - t0) / ns[label] * 1e6)
    return {k: (v, statistics.median(t)) for k, (v, t) in out.items()}


def problem(name, draws):
    model, data, _ = PROBLEMS[name]()
    base, fixed = assignments(model, data)
    progs = {}
    for e, spec in fixed.items():
        try:
            progs[f"{e} fixed"] = model.compile(estimators=spec)
        except ppl.ModelError as err:   # it applies to the node but not to what is below it (Price)
            print(json.dumps({"problem": name, "assignment": f"{e} fixed", "refused": str(err)}), flush=True)
    progs["rules"] = model.compile(policy="rules")
    t0 = time.perf_counter()
    measured = model.compile(policy="measured", pilot=data)
    choose_s = time.perf_counter() - t0
    progs["measured"] = measured
    res = measure(progs, data, draws)
    score = {k: v * t for k, (v, t) in res.items()}
    best = min((k for k in score if k.endswith("fixed") or k == "rules"), key=score.get)
    lines = []
    for k, (v, t) in res.items():
        lines.append({"problem": name, "assignment": k, "variance": v, "us_per_estimate": t,
                      "var_x_us": score[k], "ratio_to_best": score[k] / score[best]})
    chosen = {n.name: ch.estimator for n, (ch, _) in measured.choices.items()}
    lines.append({"problem": name, "summary": True, "best_in_hindsight": best, "rules": base, "measured": chosen,
                  "rules_ratio": score["rules"] / score[best], "measured_ratio": score["measured"] / score[best],
                  "measured_compile_and_choose_s": choose_s, "draws": draws})
    return lines


FIRST = """
import sys, time, numpy as np
sys.path.insert(0, {here!r})
import selection as S
model, data, _ = S.PROBLEMS[{name!r}]()
model.name = model.name + {tag!r}
spec = None if {mode!r} == "measured" else {{n.name: ch.estimator for n, (ch, _) in
                                           model.compile(policy="rules").choices.items()}}
t0 = time.perf_counter()
p = model.compile(estimators=spec or "auto", policy="measured" if spec is None else "rules")
p.grad(data)
t1 = time.perf_counter()
p.grad(data, step=1)
print(t1 - t0, time.perf_counter() - t0)
"""


def first_grad(name, rounds):
    """Median seconds to a new model's first gradient, fresh process, kernels cached (a first
    round warms them), measured default against the rule table's estimators fixed, alternating."""
    here = os.path.dirname(os.path.abspath(__file__))
    times = {"measured": [], "fixed": []}
    for r in range(rounds + 1):
        for mode in ("measured", "fixed"):
            src = FIRST.format(here=here, name=name, tag=f"_{mode[0]}{r}_{os.getpid()}", mode=mode)   # no shared step
            out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, check=True)
            if r:
                times[mode].append([float(v) for v in out.stdout.split()[-2:]])
    (m, m2), (f, f2) = (np.median(times[k], axis=0) for k in ("measured", "fixed"))
    return {"problem": name, "first_grad_s_measured": m, "first_grad_s_fixed": f, "ratio": m / f,
            "second_grad_s_measured": m2, "second_grad_s_fixed": f2, "second_ratio": m2 / f2, "rounds": rounds}


TRAINING = {"sbn784": "sbn", "gaussian_vae": "gaussian_vae"}


class _TimeUp(Exception):
    """A training run's wall time is over."""


def training(name, seconds, seed, lr=1e-3, batch=50, chunk=250):
    """The test ELBO after `seconds` of wall time (the compile and the measurement counted) of the
    rule table's choice and of the measured default, from the same initialisation (seed), Adam."""
    from ppl.models import get
    mod = get(TRAINING[name])
    if name == "sbn784":
        from mnist_digits import mnist
        d, model = mnist(), lambda: mod.build(latent=(200,), pixels=784)
    else:
        d, model = mod.data(), mod.build
    out = {}
    for policy in ("rules", "measured"):
        t0 = time.perf_counter()
        prog = model().compile(policy=policy, seed=seed)

        seen, calls = [], [0]

        def stop(p):   # the run ends at the first evaluation past the wall time (nothing is evaluated)
            calls[0] += 1
            now = {n.name: ch.estimator for n, (ch, _) in p.choices.items()}
            if not seen or seen[-1][1] != now:
                seen.append((calls[0] * chunk, now))
            if time.perf_counter() - t0 >= seconds:
                raise _TimeUp
            return 0.0
        try:
            ppl.fit(prog, d["train"], ppl.optim.Adam(lr), steps=10_000_000, batch_size=batch, seed=seed,
                    progress=False, eval_fn=stop, eval_every=chunk)
        except _TimeUp:
            pass
        switches = seen   # (the step of the evaluation that first saw them, the estimators)
        out[policy] = {"test_elbo": float(mod.evaluate(prog, d, samples=100)["test_elbo"]),
                       "steps": prog.steps_trained, "wall_s": time.perf_counter() - t0, "switches": switches,
                       "estimators": {n.name: ch.estimator for n, (ch, _) in prog.choices.items()}}
    return {"problem": name, "seed": seed, "seconds": seconds, **out}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--first", type=int, default=0, help="rounds of the first-gradient timing (0: none)")
    ap.add_argument("--train", type=float, default=0, help="seconds of training per (policy, seed): the test "
                                                           "ELBO at equal wall time (sbn784, gaussian_vae)")
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    if a.train:
        for name in [p for p in a.problems.split(",") if p in TRAINING]:
            for seed in range(a.seeds):
                print(json.dumps(training(name, a.train, seed)), flush=True)
        return
    for name in a.problems.split(","):
        if a.first:
            print(json.dumps(first_grad(name, a.first)), flush=True)
            continue
        for line in problem(name, a.draws):
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
