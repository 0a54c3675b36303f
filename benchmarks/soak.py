"""Long runs: memory, checkpoint size and speed of `ppl.fit` as a run grows.

    OPENBLAS_NUM_THREADS=1 python benchmarks/soak.py [--steps 20000000] [--checkpoint-every 5000000]
        [--steps-784 1000000] [--cases sbn64-32,sbn784-200]

Each case trains the linear SBN (the digits' 64-32, float32, DisARM by default, Adam 1e-3,
batch 1, the nopython loop) with a checkpoint every `--checkpoint-every` steps, in one process:
  1. the first 20,000 steps (`--warmup`), which compile and load everything, then
  2. the rest of the run, resumed from that checkpoint (as after a kill -9), evaluating at every
     tenth of the run a no-op that reads the clock and /proc/self/status (VmHWM, VmRSS).
sbn784-200 is the same on the 784-pixel stand-in of the digits (benchmarks/jax_peers.digits784)
for `--steps-784` steps (checkpoints every tenth of those).
JSON lines: peak RSS (VmHWM) after the warm-up and at the end and their difference (the
acceptance: <= 50 MB at 2e7 steps), the final checkpoint's size (<= 2 MB), steps per second of
each tenth (wall time, checkpoints included) with ratio = tenth / first tenth (>= 0.95 in the
last), beside steps per CPU second of the process (time.process_time: what other work on a
shared machine changes least) and the load average, and the History's record size.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.training.fit import fit  # noqa: E402
from ppl.models import sbn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))


def emit(case, metric, value, unit, baseline=None, ratio=None, **extra):
    rec = {"bench": "soak", "case": case, "metric": metric, "value": value, "unit": unit, "baseline": baseline,
           "ratio": None if ratio is None else round(ratio, 4)}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def status_mb():
    """(VmHWM, VmRSS) in MB from /proc/self/status; (ru_maxrss, NaN) where there is none."""
    try:
        got = {}
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    got[k] = int(v.split()[0]) / 1024
        return got["VmHWM"], got["VmRSS"]
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, float("nan")


def soak(case, X, latent, pixels, steps, every, warmup, est, folder):
    prog = sbn.build(latent=latent, pixels=pixels).compile(estimators=est, dtype=np.float32)
    ck = Path(folder) / f"{case}.npz"
    kw = dict(batch_size=1, seed=0, progress=False, nopython=True, split_rows=False, checkpoint=ck,
              checkpoint_every=every)
    t0 = time.perf_counter()
    fit(prog, {"x": X}, ppl.optim.Adam(1e-3), steps=warmup, **kw)
    hwm0, rss0 = status_mb()
    emit(case, "warmup_seconds", round(time.perf_counter() - t0, 2), "s", steps=warmup)
    probes = [(warmup, time.perf_counter(), hwm0, rss0, time.process_time(), os.getloadavg()[0])]
    tenth = steps // 10

    def probe(p):
        hwm, rss = status_mb()
        probes.append((None, time.perf_counter(), hwm, rss, time.process_time(), os.getloadavg()[0]))
        return 0.0
    hist = fit(prog, {"x": X}, ppl.optim.Adam(1e-3), steps=steps, resume=True, eval_every=tenth, eval_fn=probe, **kw)
    ends = [warmup] + [s for s in hist.eval_steps if s > warmup]
    probes = [(s, *p[1:]) for s, p in zip(ends, probes)]
    rates, cpu = [], []
    for (s0, t0, _, _, c0, _), (s1, t1, _, _, c1, _) in zip(probes, probes[1:]):
        rates.append((s1 - s0) / (t1 - t0))
        cpu.append((s1 - s0) / (c1 - c0))
    for i, (r, c, (s1, _, hwm, rss, _, load)) in enumerate(zip(rates, cpu, probes[1:])):
        emit(case, f"steps_per_s_tenth_{i + 1}", round(r, 1), "steps/s", baseline=round(rates[0], 1),
             ratio=r / rates[0], end_step=s1, vm_hwm_mb=round(hwm, 1), vm_rss_mb=round(rss, 1),
             steps_per_cpu_s=round(c, 1), cpu_ratio=round(c / cpu[0], 4), load_avg_1min=round(load, 2))
    hwm1, rss1 = status_mb()
    emit(case, "peak_rss_after_warmup", round(hwm0, 1), "MB", steps=warmup)
    emit(case, "peak_rss_end", round(hwm1, 1), "MB", baseline=round(hwm0, 1), ratio=hwm1 / hwm0, steps=steps)
    emit(case, "peak_rss_growth", round(hwm1 - hwm0, 1), "MB", steps=steps - warmup, rss_end_mb=round(rss1, 1))
    emit(case, "checkpoint_bytes", ck.stat().st_size, "bytes", steps=steps,
         params_bytes=int(prog.theta.nbytes), record_points=len(hist.curve()["step"]))
    emit(case, "us_per_step", round(1e6 * hist.step_time, 3), "us/step", steps=steps - warmup,
         final_loss_ema=round(hist.ema, 4), first_point_mean=round(float(hist.curve()["mean"][0]), 4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=float, default=2e7, help="steps of the 64-32 run (up to 1e8)")
    ap.add_argument("--checkpoint-every", type=float, default=5e6)
    ap.add_argument("--steps-784", type=float, default=1e6)
    ap.add_argument("--warmup", type=int, default=20_000)
    ap.add_argument("--estimator", default="disarm")
    ap.add_argument("--cases", default="sbn64-32,sbn784-200")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for case in args.cases.split(","):
            if case == "sbn64-32":
                X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
                soak(case, X, (32,), 64, int(args.steps), int(args.checkpoint_every), args.warmup, args.estimator,
                     folder)
            elif case == "sbn784-200":
                from jax_peers import digits784   # noqa: E402  (benchmarks/)
                n = int(args.steps_784)
                soak(case, digits784(), (200,), 784, n, max(1, n // 10), args.warmup, args.estimator, folder)
            else:
                raise SystemExit(f"--cases: unknown case {case!r} (sbn64-32, sbn784-200)")


if __name__ == "__main__":
    main()
