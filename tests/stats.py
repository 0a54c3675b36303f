"""Unbiasedness checks with stated power.

An estimator is tested on N independent estimates g_1..g_N of a gradient whose exact value e
comes from an oracle (tests/exact.py, tests/oracles.py, closed forms). Two statistics:

* the projection ratio p = mean_s <g_s, e> / |e|^2 (1 for an unbiased estimator) with its
  standard error: it pools every entry, so it has power where the per-entry test has none
  (high-variance estimators, many parameters). |p - 1| <= Z_PROJ SE is required;
* the per-entry z = (mean - e) / SE: |z| <= Z_ENTRY for every entry (a bias off e's direction).

The detectable bias is shown, not assumed: `assert_unbiased` runs the same check on the
estimates scaled by 1 + BIAS and 1 - BIAS and requires both to fail. A test that passes
therefore detects a relative bias of BIAS (5%) along e; the smallest bias it detects at
this sample size is Z_PROJ * SE / p, printed with the result.

Draws: data rows tiled T times give T independent estimates per call (every row has its own
noise), so `draws(prog, data, names, calls, tile)` returns `calls` estimates, each the mean of
`tile` row-estimates.
"""
from dataclasses import dataclass

import numpy as np

Z_PROJ = 4.0
Z_ENTRY = 4.5
BIAS = 0.05


def draws(prog, data, names, calls, tile=1, batch=None, seed0=0):
    """(calls, P) array of flattened gradient estimates of the named parameters."""
    if data is not None and tile > 1:
        data = {k: np.tile(v, (tile,) + (1,) * (v.ndim - 1)) for k, v in data.items()}
        if batch is not None:
            batch = batch * tile
    elif data is None and tile > 1:
        batch = (batch or 1) * tile
    out = []
    for s in range(calls):
        _, g = prog.grad(data, seed=seed0 + s, batch=batch)
        out.append(np.concatenate([np.asarray(g[k], dtype=np.float64).ravel() for k in names]))
    return np.array(out)


def flat(exact, names):
    return np.concatenate([np.asarray(exact[k], dtype=np.float64).ravel() for k in names])


@dataclass
class Result:
    proj: float        # mean projection ratio (1 = unbiased)
    se: float          # its standard error
    zmax: float        # largest per-entry |z|
    worst: int         # index of that entry
    n: int

    @property
    def ok(self) -> bool:
        return abs(self.proj - 1) <= Z_PROJ * self.se and self.zmax <= Z_ENTRY

    @property
    def detectable(self) -> float:
        """The smallest relative bias along e this sample size detects (Z_PROJ SEs)."""
        return Z_PROJ * self.se

    def __str__(self):
        return (f"proj {self.proj:.4f} +- {self.se:.4f} (detects {100 * self.detectable:.1f}% bias), "
                f"max |z| {self.zmax:.2f} at entry {self.worst}, {self.n} draws")


def check(G, e) -> Result:
    G = np.asarray(G, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    n = G.shape[0]
    ee = float(e @ e)
    assert ee > 0, "the exact gradient is zero: the projection test needs a nonzero direction"
    p = G @ e / ee
    mean = G.mean(0)
    se = G.std(0, ddof=1) / np.sqrt(n)
    scale = np.abs(e).max()
    # entries with (near) zero variance: a deviation beyond rounding counts as infinitely many SEs
    z = np.abs(mean - e) / np.maximum(se, 1e-9 * scale + 1e-300)
    j = int(np.argmax(z))
    return Result(float(p.mean()), float(p.std(ddof=1) / np.sqrt(n)), float(z[j]), j, n)


def assert_unbiased(G, e, label=""):
    """The estimates are unbiased against e, and the check has the power to see a BIAS-relative
    bias (the same check on the estimates scaled by 1 +- BIAS fails)."""
    r = check(G, e)
    assert r.ok, f"{label}: biased: {r}"
    for f in (1 + BIAS, 1 - BIAS):
        rs = check(np.asarray(G) * f, e)
        assert not rs.ok, (f"{label}: the test cannot see a {100 * BIAS:.0f}% bias (scaled by {f}: {rs}); "
                           f"draw more estimates")
    return r


def assert_unbiased_tuned(prog, data, names, e, label="", batch=None, calls=200, target_se=0.008,
                          max_tile=2000, pilot_calls=40, pilot_tile=20):
    """`assert_unbiased` on `calls` estimates, each the mean of `tile` row-estimates, the tile sized
    from a pilot run (seeds apart from the main draws) so that the ratio's SE is about
    `target_se` (capped at `max_tile`). Returns (Result, tile); the test of the test still
    decides whether a BIAS-relative bias is seen."""
    e = np.asarray(e, dtype=np.float64)
    pilot = draws(prog, data, names, pilot_calls, pilot_tile, batch=batch, seed0=10_000)
    rp = check(pilot, e)
    tile = int(np.clip(np.ceil(pilot_calls * pilot_tile * (rp.se / target_se) ** 2 / calls), 5, max_tile))
    G = draws(prog, data, names, calls, tile, batch=batch)
    r = check(G, e)
    if tile < max_tile and (r.se > 1.25 * target_se or any(check(G * f, e).ok for f in (1 + BIAS, 1 - BIAS))):
        # the pilot underestimated the variance (heavy tails): size the tile again from these
        # `calls` estimates for 0.7 * target_se and draw a fresh set (other seeds); only this
        # set is tested
        tile = int(np.clip(np.ceil(tile * (r.se / (0.7 * target_se)) ** 2), tile + 1, max_tile))
        G = draws(prog, data, names, calls, tile, batch=batch, seed0=20_000)
    r = assert_unbiased(G, e, label)
    print(label, f"tile {tile}:", r)
    return r, tile
