"""Accuracy of the implicit reparameterisation gradient of Gamma draws (kernels/math/gamma.py).

For 13 shapes alpha log-spaced over [1e-3, 1e4] and 7 uniforms u (1e-7 .. 1 - 1e-7), the
gradient dz/dalpha at fixed u of z = gamma_icdf(u, alpha) (and d log z / dalpha, defined where
z underflows) against central differences of the quantile computed by mpmath at 60 digits
(tests/oracles.py), in float64 and in float32 (the reference at the float32-rounded u, alpha).
Baseline: float64 central differences of gamma_icdf itself at h = 6e-6 alpha (about the best
step for a function known to ~1e-15), i.e. what a caller without the implicit gradient gets.

    python benchmarks/experiments/gamma_grad_accuracy.py

prints one JSON line per (precision, alpha) with the maximum relative error over u
(metric "dz_rel_err": over the u whose z is a normal number of that precision; "dlogz_rel_err":
over all u), and one line per (precision, alpha band) with the band's maximum.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from oracles import gamma_log_icdf_dalpha_mp  # noqa: E402  (tests/oracles.py)

from ppl.kernels.math import gamma as G  # noqa: E402

ALPHAS = np.logspace(-3, 4, 13)
US = np.array([1e-7, 1e-3, 0.1, 0.5, 0.9, 1 - 1e-3, 1 - 1e-7])
BANDS = [(1e-3, 1e-2), (1e-2, 1.0), (1.0, 1e2), (1e2, 1e4 * 1.001)]
TINY = {np.float64: np.finfo(np.float64).tiny, np.float32: np.finfo(np.float32).tiny}


def errors(dtype):
    """{alpha: (max rel err of dz/dalpha, of d log z/dalpha, of the baseline's dz/dalpha)}."""
    out = {}
    for a in ALPHAS:
        ez, ew, eb = 0.0, 0.0, 0.0
        a_t = dtype(a)
        for u in US:
            u_t = dtype(u)
            w = dtype(G.gamma_log_icdf(u_t, a_t))  # numba returns float32 results as Python floats
            d_ref, w_ref = gamma_log_icdf_dalpha_mp(float(u_t), float(a_t), float(w))
            d_ref, w_ref = float(d_ref), float(w_ref)
            ew = max(ew, abs(float(dtype(G.gamma_log_icdf_dalpha(w, a_t))) / d_ref - 1))
            if w_ref > np.log(TINY[dtype]):
                dz_ref = np.exp(w_ref) * d_ref
                z = dtype(G.gamma_icdf(u_t, a_t))
                ez = max(ez, abs(float(dtype(G.gamma_icdf_dalpha(z, a_t))) / dz_ref - 1))
                if w_ref > np.log(TINY[np.float64]):
                    h = 6e-6 * float(a_t)
                    fd = (G.gamma_icdf(float(u_t), float(a_t) + h) - G.gamma_icdf(float(u_t), float(a_t) - h)) / (2 * h)
                    eb = max(eb, abs(fd / dz_ref - 1))
        out[a] = (ez, ew, eb)
    return out


def main():
    for dtype, name in ((np.float64, "float64"), (np.float32, "float32")):
        err = errors(dtype)
        for a, (ez, ew, eb) in err.items():
            print(json.dumps({"bench": "gamma_grad_accuracy", "case": f"{name} alpha={a:.3g}", "metric": "dz_rel_err",
                              "value": ez, "unit": "relative", "baseline": eb, "ratio": ez / eb if eb else None}))
            print(json.dumps({"bench": "gamma_grad_accuracy", "case": f"{name} alpha={a:.3g}", "metric": "dlogz_rel_err",
                              "value": ew, "unit": "relative", "baseline": None, "ratio": None}))
        for lo, hi in BANDS:
            rows = [v for a, v in err.items() if lo <= a < hi]
            ez, ew, eb = (max(r[i] for r in rows) for i in range(3))
            print(json.dumps({"bench": "gamma_grad_accuracy", "case": f"{name} alpha in [{lo:g}, {min(hi, 1e4):g}]",
                              "metric": "band_max_rel_err", "value": max(ez, ew), "unit": "relative",
                              "baseline": eb, "ratio": max(ez, ew) / eb if eb else None}))


if __name__ == "__main__":
    main()
