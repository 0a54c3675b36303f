"""Long scans in bounded memory: checkpointed `ppl.scan` against the scan that keeps every step.

The issue's walk (a Bernoulli step up or down whose logit reads the position, a cost per step and
one on the last position; the score function, float32), 1,000 rows:

- time per gradient at 10,000 steps, every step kept (checkpoint=False) against the default
  (checkpointed every ceil(sqrt(T)) = 100 steps), alternating in one process, medians; their
  gradients compared bit for bit;
- peak resident memory of a gradient at 10,000 and 50,000 steps, each configuration in a fresh
  process (compiling included: it is what a user's process holds).

    OPENBLAS_NUM_THREADS=1 python benchmarks/long_scan.py [--rows 1000] [--calls 9]

Prints JSON lines; BENCHMARKS.md records the result.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def walk(T, checkpoint):
    import ppl
    with ppl.Model(f"long_walk_{T}_{checkpoint}") as m:
        theta = ppl.param("theta", 1, 0.3)

        def step(s, t):
            up = ppl.Bernoulli("up", logits=theta - 0.05 * s)
            s = s + 2.0 * up - 1.0
            m.cost("c", ppl.total(1e-4 * (s * s)))
            return s, None
        last, _ = ppl.scan(step, m.input("s0", 1), length=T, checkpoint=checkpoint)
        m.cost("end", ppl.total(1e-3 * (last * last)))
    return m.compile(estimators="score", policy="rules")


def one(T, checkpoint, rows):
    """A fresh process's peak memory for one gradient."""
    prog = walk(T, checkpoint)
    d = {"s0": np.zeros((rows, 1), np.float32)}
    t0 = time.perf_counter()
    prog.grad(d, seed=0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    prog.grad(d, seed=1)
    return {"steps": T, "rows": rows, "checkpointed": "for seg_ in range(" in prog.source,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "first_call_s": first, "grad_s": time.perf_counter() - t0}


def timing(T, rows, calls):
    kept, ck = walk(T, False), walk(T, None)
    d = {"s0": np.zeros((rows, 1), np.float32)}
    la, ga = kept.grad(d, seed=0)
    lb, gb = ck.grad(d, seed=0)
    same = bool(la == lb and np.array_equal(ga["theta"], gb["theta"]))
    ts = {"kept": [], "checkpointed": []}
    for c in range(calls):
        for name, prog in (("kept", kept), ("checkpointed", ck)) if c % 2 == 0 else (("checkpointed", ck), ("kept", kept)):
            t0 = time.perf_counter()
            prog.grad(d, seed=c)
            ts[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in ts.items()}
    return {"steps": T, "rows": rows, "kept_s": med["kept"], "checkpointed_s": med["checkpointed"],
            "ratio": med["checkpointed"] / med["kept"], "bitwise_equal": same, "calls": calls}


def main():
    # the steady state: a new scan's first calls would run interpreted over its kernels until the
    # step's compile pays (ppl/runtime/first_steps.py); this times, and compiles at once, the compiled step
    os.environ.setdefault("PPL_FIRST_STEPS", "0")
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=9)
    ap.add_argument("--one", nargs=2)
    a = ap.parse_args()
    if a.one:
        T, ck = int(a.one[0]), (None if a.one[1] == "default" else False)
        print(json.dumps(one(T, ck, a.rows)))
        return
    print(json.dumps({"bench": "long_scan_time", **timing(10_000, a.rows, a.calls)}), flush=True)
    for T, ck in ((10_000, "kept"), (10_000, "default"), (50_000, "default"), (50_000, "kept")):
        out = subprocess.run([sys.executable, __file__, "--rows", str(a.rows), "--one", str(T), ck],
                             capture_output=True, text=True, env=os.environ)
        line = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None
        print(json.dumps({"bench": "long_scan_memory", "config": ck, **(json.loads(line) if line else
                                                                        {"steps": T, "failed": out.stderr[-300:]})}),
              flush=True)


if __name__ == "__main__":
    main()
