"""Compile time of a NEW graph with the kernels cached: every bundled model, new two-layer SBNs
a user's SBN of 1 and of 8 stochastic layers, and two loops a user writes (a hidden Markov model
and a random walk, each a `ppl.scan` of 50 steps), each in a fresh process, timed to its first
training step.

A warm-up process compiles every case once, so the kernel modules' Numba caches are warm; each
measured case then renames its model (a new name is a new step source, so the step itself is
compiled anew, as for a graph the user has just written) and reports, in JSON lines:
  import_s        `import ppl` (Numba, the kernel modules loaded from their caches)
  passes_s        the compiler's passes (compiler.PASSES: analyse ... render), Python only
  load_s          writing and importing the generated module
  first_step_s    the first grad() call: Numba types the step (its kernels loaded or compiled) and
                  the step runs interpreted over them (ppl/runtime/first_steps.py)
  numba_llvm_s    of which LLVM (optimisation, linking, code generation; numba:llvm_lock)
  to_first_step_s build + compile + first step: the figure the targets are about
  grad_call_us    a further grad() call (interpreted: the step is not compiled yet)
  step_compile_s  then, the interpreter's count spent, the grad() call that compiles the step (what
                  fit's loops and a user's @njit code wait for: Numba types, lowers, optimises it)
  compiled_grad_call_us  a grad() call of the compiled step
`baseline` is the case's target (1.0 s; 2.0 s for the 8-layer SBN; ratio = value / target, <= 1
meets it). Medians over --rounds fresh processes per case.

Beside them, the same figures fully cold (`cold_` + the metric): the case in a fresh process with
an empty cache folder of its own (a new machine: every kernel compiled), alternating with the
warm runs in each round; `--no-cold` leaves them out.

    OPENBLAS_NUM_THREADS=1 python benchmarks/compile.py [--rounds 3] [--cases sbn,sbn_2layer] [--no-cold]
        [--against-env NAME=VALUE]

`--against-env`: each warm run is followed, in the same round, by one with that environment
variable set (a switch of ppl's, e.g. PPL_COMPILE_GC=1: the collector left running while ppl
compiles); its lines name the case `CASE[NAME=VALUE]`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET_S = 1.0
TARGETS_S = {"user_sbn8": 2.0}   # cases with a target of their own
# case -> (model, build options, compile options)
CASES = {
    "sbn": ("sbn", {}, {"samples": 4}),
    "sbn_2layer": ("sbn", {"latent": (32, 16)}, {"samples": 4}),
    "sbn_2layer_nl": ("sbn", {"latent": (32, 32), "nonlinear": True}, {"samples": 1}),
    "gaussian_vae": ("gaussian_vae", {}, {}),
    "categorical_vae": ("categorical_vae", {}, {"estimators": "gumbel_softmax"}),
    "toy_bernoulli": ("toy_bernoulli", {}, {"dtype": "float64"}),
    "prob_regression": ("prob_regression", {}, {"dtype": "float64"}),
    "stochastic_classifier": ("stochastic_classifier", {}, {"policy": "fast"}),
    # a user's own SBN (64 pixels, layers of 32 Bernoulli units, the default estimator), as the
    # compile issue writes it: 1 and 8 stochastic layers (the cost of each added layer)
    "user_sbn1": ("user_sbn", {"layers": 1}, {}),
    "user_sbn8": ("user_sbn", {"layers": 8}, {}),
    # loops of their own (a `ppl.scan` each): a hidden Markov model summed out step by step (3 states,
    # 4 symbols, 50 steps: benchmarks/hmm.py's) and a random walk of Bernoulli moves (50 steps, DisARM)
    "user_hmm": ("user_hmm", {"T": 50}, {}),
    "user_walk": ("user_walk", {"T": 50}, {}),
}

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import ppl
from ppl.models import get
from numba.core import event
t_import = time.perf_counter() - t0
name, build_opts, comp_opts, suffix = json.loads(sys.argv[1])


class _UserSBN:
    # a user's SBN of L layers written with the DSL (q(h_1 | x) ... q(h_L | h_{L-1}); p(x | h_1),
    # p(h_l | h_{l+1}), p(h_L)), on the bundled digits (a comment: a docstring would end CHILD's string)
    @staticmethod
    def data(seed):
        return get("sbn").data(seed)

    @staticmethod
    def build(layers):
        with ppl.Model(f"user_sbn{layers}") as m:
            x = m.input("x", 64)
            hs, prev = [], x
            for l in range(layers):
                prev = ppl.Bernoulli(f"h{l}", logits=ppl.Affine(prev, 32, name=f"q{l}"))
                hs.append(prev)
            m.observe("recon", ppl.dist.Bernoulli(logits=ppl.Affine(hs[0], 64, name="p0")), x)
            for l in range(1, layers):
                m.latent(hs[l - 1], ppl.dist.Bernoulli(logits=ppl.Affine(hs[l], 32, name=f"p{l}")))
            m.latent(hs[-1], ppl.dist.Bernoulli(logits=ppl.param("prior", 32, 0.0)))
        return m


class _UserHMM:
    # S states, M symbols, T steps: the transition's logits an affine of the one-hot previous state,
    # the emission's an affine of the state, the state summed out (guide="enumerate")
    S, M = 3, 4

    @classmethod
    def data(cls, seed):
        rng = np.random.default_rng(seed)
        sym = rng.integers(0, cls.M, (64, cls.T))
        return {"train": {"x": np.eye(cls.M)[sym].reshape(64, cls.T * cls.M)}}

    @classmethod
    def build(cls, T):
        from ppl.language import dist
        with ppl.Model("user_hmm") as m:
            x = m.input("x", T * cls.M)

            def step(z_prev, x_t):
                z = m.latent("z", dist.Categorical(logits=ppl.Affine(z_prev, cls.S, name="trans")), guide="enumerate")
                m.observe("sym", dist.Categorical(logits=ppl.Affine(z, cls.M, name="emit")), x_t)
                return z, None
            ppl.scan(step, ppl.const(0.0, cls.S), xs=x, length=T)
        return m


class _UserWalk:
    # a walk of T Bernoulli moves from a start read off the data row: each move's logits an affine
    # of the position and the step's input, a cost per step and one on the end
    @classmethod
    def data(cls, seed):
        return {"train": {"x": np.random.default_rng(seed).normal(size=(64, cls.T))}}

    @classmethod
    def build(cls, T):
        with ppl.Model("user_walk") as m:
            x = m.input("x", T)

            def body(s, x_t):
                up = ppl.Bernoulli("up", logits=ppl.Affine(s, 1, name="move") + x_t)
                m.cost("step", ppl.total(0.5 * (s * s)))
                return s + 2.0 * up - 1.0, up
            last, ups = ppl.scan(body, ppl.Affine(x, 1, name="start"), xs=x, length=T)
            m.cost("end", ppl.total(last * last + 0.3 * ppl.rowsum(ups)))
        return m


USERS = {"user_sbn": _UserSBN, "user_hmm": _UserHMM, "user_walk": _UserWalk}
mod = USERS[name] if name in USERS else get(name)
if "T" in build_opts:
    mod.T = build_opts["T"]
data = mod.data(0)["train"]   # None: a model without data inputs (the toy)
comp_opts = dict(comp_opts)
dtype = np.dtype(comp_opts.pop("dtype", "float32"))
batch = None if data is None else {k: np.ascontiguousarray(v[:32], dtype) for k, v in data.items()}
llvm = []
t1 = time.perf_counter()
m = mod.build(**build_opts)
m.name = m.name + suffix
prog = m.compile(dtype=dtype, **comp_opts)
t2 = time.perf_counter()
B = None if batch is not None else 32
with event.install_timer("numba:llvm_lock", llvm.append):
    prog.grad(batch, seed=0, batch=B)
t3 = time.perf_counter()
passes = sum(getattr(prog, "compile_times", {}).values())
out = {"import_s": t_import, "passes_s": passes, "load_s": (t2 - t1) - passes, "first_step_s": t3 - t2,
       "numba_llvm_s": sum(llvm), "to_first_step_s": t3 - t1}


def per_call_us(f, n=200):
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


first = prog.__dict__.get("_first_steps")   # a step with loops: fewer calls, well within its time's budget
loops = bool(first) and first.budget_s is not None
out["grad_call_us"] = per_call_us(lambda: prog.grad(batch, seed=0, batch=B), 20 if loops else 200)
first = prog.__dict__.get("_first_steps")   # (the program of the measured choice, once made)
if first:   # its count (and time) spent: the next call compiles the step (as fit's loops do)
    first.budget = first.calls
    first.spent_s = max(first.spent_s, first.budget_s or 0.0)
t4 = time.perf_counter()
prog.grad(batch, seed=0, batch=B)
out["step_compile_s"] = time.perf_counter() - t4
out["compiled_grad_call_us"] = per_call_us(lambda: prog.grad(batch, seed=0, batch=B))
print(json.dumps(out))
"""


def run_case(case: str, suffix: str, env: dict) -> dict:
    name, build_opts, comp_opts = CASES[case]
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([name, build_opts, comp_opts, suffix])],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--no-cold", action="store_true", help="leave out the fully cold runs")
    ap.add_argument("--against-env", default=None, metavar="NAME=VALUE",
                    help="also time each warm case with this environment variable set, in turns")
    args = ap.parse_args()
    against = None
    if args.against_env:
        name, sep, value = args.against_env.partition("=")
        if not sep or not name:
            sys.exit(f"compile.py: --against-env takes NAME=VALUE, got {args.against_env!r}")
        against = (name, value)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"compile.py: unknown cases {unknown}; known: {', '.join(CASES)}")
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    # a user's Python keeps the bytecode of the modules it imports (__pycache__, or pip's at
    # install); an environment that forbids it (PYTHONDONTWRITEBYTECODE) would time Python
    # compiling ppl's and Numba's sources at every import instead
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PPL_CACHE_DIR"] = tempfile.mkdtemp(prefix="ppl_compile_bench_")
    for case in cases:   # warm the kernel caches (and this case's step under another name)
        run_case(case, "_warmup", env)
    # a warm-up's compile helper waits LINGER seconds for more work before it exits (ppl/compiler/ahead.py):
    # let the last one go, or it shares the cores with the first measured case
    from ppl.compiler.ahead import LINGER
    time.sleep(LINGER + 1.0)
    results = {c: [] for c in cases}
    cold = {c: [] for c in cases}
    other = {c: [] for c in cases}
    for r in range(args.rounds):   # alternate cases (and warm / cold / the other setting) within each round
        for case in cases:
            results[case].append(run_case(case, f"_new{r}", env))
            if against:
                other[case].append(run_case(case, f"_other{r}", dict(env, **{against[0]: against[1]})))
            if not args.no_cold:
                cold[case].append(run_case(case, "", dict(env, PPL_CACHE_DIR=tempfile.mkdtemp(prefix="ppl_cold_"))))
    for case in cases:
        other_label = f"{case}[{against[0]}={against[1]}]" if against else None
        for label, prefix, rs in ((case, "", results[case]), (case, "cold_", cold[case]), (other_label, "", other[case])):
            if not rs:
                continue
            for metric in ("import_s", "passes_s", "load_s", "first_step_s", "numba_llvm_s", "to_first_step_s",
                           "grad_call_us", "step_compile_s", "compiled_grad_call_us"):
                v = float(np.median([x[metric] for x in rs]))
                base = TARGETS_S.get(case, TARGET_S) if metric == "to_first_step_s" and not prefix else None
                print(json.dumps({"bench": "compile", "case": label, "metric": prefix + metric, "value": round(v, 4),
                                  "unit": "us" if metric.endswith("_us") else "s", "baseline": base, "ratio": round(v / base, 3) if base else None}),
                      flush=True)


if __name__ == "__main__":
    main()
