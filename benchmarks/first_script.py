"""A user's first script, cold and warm: import ppl, declare a small model of one's own, compile,
fit 200 steps, in a fresh process, against another tree of ppl in the same sitting.

    OPENBLAS_NUM_THREADS=1 python benchmarks/first_script.py [--base REV] [--rounds 3] [--no-warmup]

Two scripts a new user writes first: a Beta-Bernoulli coin with a plate and an automatic guide,
and a Poisson regression with global coefficients (automatic guides) over 500 rows. "cold": an
empty cache folder (PPL_CACHE_DIR: ppl's and Numba's caches, nothing compiled yet, as after
`pip install`); "warm": the same folder again; "after_warmup": an empty folder filled by `ppl warmup`
(its own time: case warmup/after_warmup), then the script. Each run is a new Python process, timed from its
start to its end (import included). The trees: this one, and `--base` (a git revision, checked
out into a temporary worktree; default: the tree before the first-hour work, 2749acf), their
runs alternating, round by round. One JSON line per (tree, script, cold | warm) with the median.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COIN = """
import numpy as np, ppl
from ppl import dist
y = (np.random.default_rng(0).random((200, 1)) < 0.3).astype(float)
with ppl.Model("coin") as m:
    obs = m.input("y", 1)
    p = m.latent("p", dist.Beta(2.0, 2.0))
    with m.plate("data", size=200):
        m.observe("lik", dist.Bernoulli(probs=p), obs)
prog = m.compile()
ppl.fit(prog, {"y": y}, ppl.optim.Adam(0.05), steps=200, batch_size=50, progress=False)
"""

POISSON = """
import numpy as np, ppl
from ppl import dist
rng = np.random.default_rng(0)
x = rng.normal(size=(500, 3))
k = rng.poisson(np.exp(x @ np.array([0.5, -0.3, 0.2]) + 0.1))[:, None].astype(float)
with ppl.Model("poisson_regression") as m:
    xs, ks = m.input("x", 3), m.input("k", 1)
    beta = m.latent("beta", dist.Normal(0.0, 1.0), width=3)
    b = m.latent("b", dist.Normal(0.0, 1.0))
    with m.plate("data", size=500):
        m.observe("lik", dist.Poisson(ppl.exp(ppl.rowdot(xs, beta) + b)), ks)
prog = m.compile()
ppl.fit(prog, {"x": x, "k": k}, ppl.optim.Adam(0.05), steps=200, batch_size=50, progress=False)
"""


def _timed(tree: Path, cache: Path, args: list) -> float:
    """Wall seconds of a fresh `python ARGS` with `tree`'s ppl and the cache folder `cache`."""
    env = {**os.environ, "PPL_CACHE_DIR": str(cache), "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("OPENBLAS_CORETYPE", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=tree, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def run(tree: Path, script: str, cache: Path) -> float:
    """Wall seconds of one fresh process running `script`."""
    return _timed(tree, cache, ["-c", script])


def warmup(tree: Path, cache: Path) -> float:
    """Wall seconds of `python -m ppl.warmup` (every bundled model and the laws, in parallel) into `cache`."""
    return _timed(tree, cache, ["-m", "ppl.warmup"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="2749acf", help="the other tree's git revision (default: 2749acf)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-warmup", action="store_true", help="leave the after_warmup runs out")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppl-first-") as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.base], check=True,
                       capture_output=True)
        for sub in ("kernels", "models"):   # an older tree imports them only as ppl.<sub> (its installed layout)
            if not (base / "ppl" / sub).exists():
                (base / "ppl" / sub).symlink_to(base / sub, target_is_directory=True)
        try:
            trees = {"this": ROOT, a.base: base}
            times = {(t, s, w): [] for t in trees for s in ("coin", "poisson") for w in ("cold", "warm")}
            if not a.no_warmup:
                times.update({("this", s, "after_warmup"): [] for s in ("coin", "poisson", "warmup")})
            for r in range(a.rounds):
                for name, script in (("coin", COIN), ("poisson", POISSON)):
                    for t, tree in trees.items():
                        cache = tmp / f"cache-{r}-{name}-{t}"
                        times[(t, name, "cold")].append(run(tree, script, cache))
                        times[(t, name, "warm")].append(run(tree, script, cache))
                    if a.no_warmup:
                        continue
                    cache = tmp / f"cache-{r}-{name}-warmup"   # `ppl warmup` once, then the script
                    times[("this", "warmup", "after_warmup")].append(warmup(ROOT, cache))
                    times[("this", name, "after_warmup")].append(run(ROOT, script, cache))
            for (t, s, w), v in times.items():
                print(json.dumps({"bench": "first_script", "case": f"{s}/{w}", "tree": t, "metric": "median_seconds",
                                  "value": round(statistics.median(v), 2), "unit": "s",
                                  "all": [round(x, 2) for x in v]}), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)


if __name__ == "__main__":
    main()
