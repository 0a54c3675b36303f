"""Whether fit's nopython chunk loop should be compiled beside the first steps when the disk
cache is cold: what its first compile costs against what it saves per step.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/chunk_compile.py [--steps 2000] [--rounds 3]

Each case runs in a fresh process with an empty cache folder (`PPL_CACHE_DIR`): the step and its
kernels are compiled first (a short per-step fit), then, alternating in rounds,
  python      fit(nopython=False): one Python call per step
  nopython    fit(nopython=True): the chunk loop; its first call compiles the loop for the
              step's signature (`loop_compile_s` = that call less a warm call)
and the figures that decide: the saving per step, the steps after which compiling the loop in
the program's process pays (`break_even_steps`), and the most a loop compiled on a second core
beside the first steps could save in runs of 1,000 / 3,000 / 10,000 steps: the steps left once it
is ready, times the saving, the compile taken as free (`helper_gain_s`; a helper's start and its
load of the step would come on top). fit's own rule (compile in-process from NEW_SIGNATURE_STEPS
steps on) is printed beside.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

CASES = {"sbn64-32/batch=1": ("sbn64-32", 1), "sbn64-32/batch=32": ("sbn64-32", 32),
         "sbn784-200/batch=50": ("sbn784-200", 50)}

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, {here!r})
import jax_peers as jp
import ppl
from ppl.training.fit import fit, _Chunks
case, B, steps, rounds = {case!r}, {B}, {steps}, {rounds}
X = jp.case_data(case, "standin")
prog = jp.build(case).compile(estimators="straight_through", dtype=np.float32)
opt = ppl.optim.Adam(1e-3)
fit(prog, {{"x": X}}, opt, steps=20, batch_size=B, progress=False, nopython=False)   # the step's compile

def run(nopython):
    t0 = time.perf_counter()
    fit(prog, {{"x": X}}, opt, steps=steps, batch_size=B, progress=False, nopython=nopython, blas_threads=1)
    return time.perf_counter() - t0

first = run(True)
t = {{"python": [], "nopython": []}}
for _ in range(rounds):
    for k in t:
        t[k].append(run(k == "nopython"))
med = {{k: float(np.median(v)) for k, v in t.items()}}
print(json.dumps({{"first": first, **med, "rule": _Chunks.NEW_SIGNATURE_STEPS}}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # benchmarks/: jax_peers
    for name in args.cases.split(","):
        case, B = CASES[name]
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, PPL_CACHE_DIR=cache, PPL_COMPILE_JOBS="1")
            code = CHILD.format(here=here, case=case, B=B, steps=args.steps, rounds=args.rounds)
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(json.dumps({"bench": "chunk_compile", "case": name, "metric": "error",
                              "value": out.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        n = args.steps
        py_us, np_us = r["python"] / n * 1e6, r["nopython"] / n * 1e6
        compile_s = r["first"] - r["nopython"]
        saving_us = py_us - np_us
        ready = compile_s / (py_us * 1e-6)   # steps the per-step loop runs while a helper compiles
        gains = {f"{k}": round(max(0.0, k - ready) * saving_us * 1e-6, 4) for k in (1000, 3000, 10000)}
        print(json.dumps({"bench": "chunk_compile", "case": name, "metric": "loop_compile_s", "value": round(compile_s, 3),
                          "unit": "s", "python_us": round(py_us, 2), "nopython_us": round(np_us, 2),
                          "saving_us_per_step": round(saving_us, 2),
                          "break_even_steps": round(compile_s / max(saving_us * 1e-6, 1e-12)),
                          "helper_ready_after_steps": round(ready), "helper_gain_s": gains,
                          "run_s_python": {k: round(k * py_us * 1e-6, 3) for k in (1000, 3000, 10000)},
                          "fit_rule_steps": r["rule"], "steps": n, "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
