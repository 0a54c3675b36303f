"""A family declared once (kernels/families/<family>.py) against the hand-written CPU kernels it
replaced, in one process: the old `kernels/cpu_<family>.py` read from git at a revision that still
has it (relative imports made `ppl.kernels.*`, loaded as `ppl.kernels.cpu_old_<family>` so that
kernels/_link.py treats it as a ppl kernel module), and the declared kernel `ppl.kernels.cpu.<name>`,
called on the same arrays, alternating rounds, median per call.

Run ``OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/declared_kernels.py antithetic --rev REV``. Prints
one JSON line per (kernel, shape, dtype):
{"bench": "declared_kernels", "case": "<name> <R>x<D> <dtype>", "metric": "median_us",
 "value": new_us, "unit": "us", "baseline": old_us, "ratio": new / old}
With ``--asm``, no timing: whether the two kernels' machine code is the same up to symbol and
label names (both compiled afresh, not loaded from a cache), one line per (kernel, dtype):
{"bench": "declared_kernels", "case": "<name> <dtype>", "metric": "same_machine_code",
 "value": true / false, "unit": "lines", "baseline": old lines, "ratio": new lines / old lines}
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ppl.kernels.cpu import core as cpu  # noqa: E402
from ppl.kernels.parity_cases import Gen  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _antithetic(g, R, D):
    def pairs(rows):
        logits, u = g.x(rows, D), g.u(rows, D)
        b = np.zeros((rows, D), g.dt)
        cpu.antithetic_bernoulli(logits, u, 1, 1, 2, b)
        return logits, u, b
    logits, u, b = pairs(R)
    return {
        "antithetic_bernoulli": (logits, u, 1, 1, 2, g.out(R, D)),
        "arm_grad": (u, g.x(R), g.pos(R), 1, 1, 2, g.x(R, D)),
        "disarm_grad": (logits, b, g.x(R), g.pos(R), 1, 1, 2, g.x(R, D)),
        "arm_grad_marginal": (u, g.x(R), g.pos(R), 1, 1, 2, (2,), (2,), g.x(R, D)),
        "disarm_grad_marginal": (logits, b, g.x(R), g.pos(R), 1, 1, 2, (2,), (2,), g.x(R, D)),
        "scale_rows": (g.pos(R), 1.0),
    }


def _cat_antithetic(g, R, D):
    K = 4 if D % 4 == 0 else 3
    logits, u = np.repeat(2 * g.x(R // 2, D), 2, axis=0), np.repeat(g.u(R // 2, D), 2, axis=0)
    v = np.zeros((R, D), g.dt)
    cpu.cat_antithetic_sample(logits, u, 1, 1, 2, K, v)
    return {
        "cat_antithetic_sample": (logits, u, 1, 1, 2, K, g.out(R, D)),
        "cat_disarm_grad": (logits, v, g.x(R), g.pos(R), 1, 1, 2, K, g.x(R, D)),
        "cat_disarm_grad_marginal": (logits, v, g.x(R), g.pos(R), 1, 1, 2, (2,), (2,), K, g.x(R, D)),
    }


def _unordered_set(g, R, D):
    from ppl.kernels.families.unordered_set import table_width
    k = 3
    n = R - R % k
    logits, gum = np.repeat(2 * g.x(n // k, D), k, axis=0), np.repeat(g.x(n // k, D), k, axis=0)
    ws, rw = np.zeros((n, table_width(k)), g.dt), g.pos(n)
    cpu.us_forward(logits, gum, 1, k, D, ws, np.zeros((n, D), g.dt), rw)
    return {
        "us_forward": (logits, gum, 1, k, D, ws.copy(), g.out(n, D), rw.copy()),
        "us_grad": (logits, ws, g.x(n), rw, 1, k, D, g.x(n, D)),
    }


def _dcv(g, R, D):
    K, S = 2, 2   # 2 samples per data row x a digit of size 2 below the node
    n = R - R % (K * S)
    args = (g.x(n, D), g.bits(n, D), g.x(n), g.x(n, D), g.pos(n), K, S, (1,), (2,), g.h(-0.8))
    scratch = (g.out(n), g.out(n), g.out(n), g.out(n, D), g.x(n, D))
    return {"double_cv_grad": (*args, False, *scratch, np.zeros(0, g.dt)),
            "double_cv_grad[train]": (*args, True, *scratch, g.out(n))}


def _bounds(g, R, D):
    K, S = 4, 2   # D unused: the kernels are per row
    n = R * K * S
    tot, ell = g.x(n), g.x(n)
    return {
        "iwae_bound": (tot, K, S, g.out(n), g.out(n)),
        "vimco_baseline": (tot, K, S, g.out(n)),
        "iwae_swap_one": (tot, ell, K, S, 1, g.out(n)),
        "config_weights": (S, 0, 1, 0.125, g.out(n)),
    }


def _price(g, R, D):
    x = lambda: g.x(R, D)  # noqa: E731
    return {
        "seed_d": (g.out(R, D), g.out(R, D)),
        "mul_d": tuple(x() for _ in range(6)) + (g.out(R, D), g.out(R, D)),
        "add_d": tuple(x() for _ in range(4)) + (g.out(R, D), g.out(R, D)),
        "scale_d": (1.7, x(), x(), g.out(R, D), g.out(R, D)),
        "zero_d": (g.out(R, D), g.out(R, D)),
        "hess_total": (g.pos(R), x(), x(), x()),
        "hess_bernoulli_nll_logits": (g.pos(R), x(), g.bits(R, D), x(), x(), x()),
        "hess_gaussian_nll_mean": (g.pos(R), x(), x(), g.pos(R, D), x(), x(), x()),
        "hess_gaussian_nll_scale": (g.pos(R), x(), g.pos(R, D), x(), x(), x(), x()),
        "hess_normal_log_prob_value": (g.pos(R), x(), x(), g.pos(R, D), x(), x(), x()),
        "price_scale_grad": (g.pos(R, D), x(), x()),
    }


def _costs(g, R, D):
    from ppl.kernels.families import costs
    K, M = (4 if D % 4 == 0 else 3), 5
    G = D // K
    x = lambda *s: g.x(*s)  # noqa: E731
    return {
        "gaussian_kl_std": (x(R, D), g.pos(R, D), g.out(R)),
        "gaussian_kl_std_bwd": (x(R, D), g.pos(R, D), x(R), x(R, D), x(R, D)),
        "gaussian_kl": (x(R, D), g.pos(R, D), x(R, D), g.pos(R, D), g.out(R)),
        "gaussian_kl_bwd": (x(R, D), g.pos(R, D), x(R, D), g.pos(R, D), x(R), x(R, D), x(R, D), x(R, D), x(R, D)),
        "gaussian_kl_bwd[skip]": (x(R, D), g.pos(R, D), x(R, D), g.pos(R, D), x(R), x(R, D), x(R, D),
                                  g.skip(2), g.skip(2)),
        "bernoulli_nll": (3 * x(R, D), g.bits(R, D), g.out(R)),
        "bernoulli_nll_bwd": (x(R, D), g.bits(R, D), x(R), x(R, D), x(R, D)),
        "bernoulli_nll_bwd[skip]": (x(R, D), g.bits(R, D), x(R), x(R, D), g.skip(2)),
        "gaussian_nll": (x(R, D), g.pos(R, D), x(R, D), g.out(R)),
        "gaussian_nll_bwd": (x(R, D), g.pos(R, D), x(R, D), x(R), x(R, D), x(R, D), x(R, D)),
        "softmax_xent": (x(R, D), g.onehot(R, G, K), K, g.out(R)),
        "softmax_xent_bwd": (x(R, D), g.onehot(R, G, K), K, x(R), x(R, D), x(R, D)),
        "nce_logistic": (x(R, D), x(R, M), x(R, D), x(R, M), g.out(R)),
        "nce_logistic_bwd": (x(R, D), x(R, M), x(R, D), x(R, M), x(R), x(R, D), x(R, M)),
    } if costs else {}


def _bernoulli(g, R, D):
    x, B = (lambda *s: g.x(*s)), R // 2   # noqa: E731  (_rep: B data rows of 2 draws)
    return {
        "bernoulli_sample": (x(R, D), x(R, D), g.out(R, D)),
        "bernoulli_sample_rep": (3 * x(B, D), 2, g.u(R, D), g.out(R, D)),
        "bernoulli_log_prob": (3 * x(R, D), g.u(R, D), g.out(R)),
        "bernoulli_log_prob_bwd": (x(R, D), g.bits(R, D), x(R), x(R, D), x(R, D)),
        "bernoulli_log_prob_bwd[skip]": (x(R, D), g.bits(R, D), x(R), x(R, D), g.skip(2)),
        "bernoulli_log_prob_keep": (3 * x(R, D), g.bits(R, D), g.out(R), g.out(R, D)),
        "bernoulli_log_prob_kept_bwd": (x(R, D), g.bits(R, D), g.u(R, D), x(R), x(R, D), x(R, D)),
        "bernoulli_nll_keep": (3 * x(R, D), g.bits(R, D), g.out(R), g.out(R, D)),
        "bernoulli_nll_kept_bwd": (x(R, D), g.bits(R, D), g.u(R, D), x(R), x(R, D), g.skip(2)),
        "bernoulli_log_prob_keep_const": (3 * x(D), g.bits(R, D), g.out(R), g.out(R, D)),
        "bernoulli_nll_keep_const": (3 * x(D), g.bits(R, D), g.out(R), g.out(R, D)),
        "bernoulli_log_prob_keep_rep": (3 * x(B, D), 2, g.bits(R, D), g.out(R), g.out(B, D)),
        "bernoulli_nll_keep_rep": (3 * x(B, D), 2, g.bits(R, D), g.out(R), g.out(B, D)),
        "bernoulli_log_prob_kept_bwd_rep": (x(B, D), 2, g.bits(R, D), g.u(B, D), x(R), x(R, D), x(R, D)),
        "bernoulli_nll_kept_bwd_rep": (x(B, D), 2, g.bits(R, D), g.u(B, D), x(R), x(R, D), g.skip(2)),
        "bernoulli_st_bwd": (x(R, D), x(R, D), x(R, D)),
        "binary_concrete_sample": (x(R, D), x(R, D), g.h(0.7), g.out(R, D)),
        "binary_concrete_bwd": (x(R, D), x(R, D), g.h(0.7), g.u(R, D), x(R, D), x(R, D), x(1)),
        "binary_concrete_bwd[skip]": (x(R, D), x(R, D), g.h(0.7), g.u(R, D), x(R, D), x(R, D), g.skip(1)),
    }


def _probit(g, R, D):
    x = lambda *s: g.x(*s)  # noqa: E731
    return {
        "probit_sample": (x(R, D), x(R, D), g.out(R, D)),
        "probit_log_prob": (4 * x(R, D), g.u(R, D), g.out(R)),
        "probit_log_prob_bwd": (4 * x(R, D), g.bits(R, D), x(R), x(R, D), x(R, D)),
        "probit_log_prob_bwd[skip]": (4 * x(R, D), g.bits(R, D), x(R), g.skip(2), x(R, D)),
        "probit_st_bwd": (x(R, D), x(R, D), x(R, D)),
    }


def _normal(g, R, D):
    x = lambda *s: g.x(*s)  # noqa: E731
    return {
        "normal_sample": (x(R, D), g.pos(R, D), x(R, D), g.out(R, D)),
        "normal_sample_bwd": (x(R, D), x(R, D), x(R, D), x(R, D)),
        "normal_sample_bwd[skip]": (x(R, D), x(R, D), g.skip(2), x(R, D)),
        "normal_log_prob": (x(R, D), g.pos(R, D), x(R, D), g.out(R)),
        "normal_log_prob_bwd": (x(R, D), g.pos(R, D), x(R, D), x(R), x(R, D), x(R, D), x(R, D)),
        "normal_log_prob_bwd[skip]": (x(R, D), g.pos(R, D), x(R, D), x(R), x(R, D), g.skip(2), g.skip(2)),
    }


def _categorical(g, R, D):
    K = 4 if D % 4 == 0 else 3
    G = D // K
    x = lambda *s: g.x(*s)  # noqa: E731
    logits, gum, tau = x(R, D), x(R, D), g.h(0.5)
    y = np.zeros((R, D), g.dt)
    cpu.gumbel_softmax_sample(logits, gum, tau, K, y)
    return {
        "categorical_sample": (x(R, D), x(R, D), K, g.out(R, D)),
        "categorical_inverse_cdf_sample": (x(R, D), g.u(R, G), K, g.out(R, D)),
        "categorical_log_prob": (x(R, D), g.onehot(R, G, K), K, g.out(R)),
        "categorical_log_prob_bwd": (x(R, D), g.onehot(R, G, K), K, x(R), x(R, D), x(R, D)),
        "categorical_log_prob_bwd[skip]": (x(R, D), g.onehot(R, G, K), K, x(R), x(R, D), g.skip(2)),
        "gumbel_softmax_sample": (x(R, D), x(R, D), tau, K, g.out(R, D)),
        "gumbel_softmax_bwd": (logits, gum, tau, K, y, x(R, D), x(R, D), x(1)),
    }


def _lax(g, R, D):
    from ppl.kernels.cpu.relax import relax_size
    C, H = 2, 4   # a data context of 2 columns, 4 hidden units
    P = relax_size(D, C, H)
    args = (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.pos(R), g.x(R, C), 0.5 * g.x(P), H)
    return {"lax_normal_bwd": (*args, g.x(R, D), g.x(R, D), g.x(P), True),
            "lax_normal_bwd[untrained, no scale]": (*args, g.x(R, D), g.skip(2), g.x(P), False)}


def _optim(g, R, D):
    n = R * D   # a parameter vector of R x D entries (with a 16-lane tail where R x D is not a multiple)
    return {
        "sgd_update": (g.x(n), g.x(n), g.h(0.1)),
        "sgd_update[float]": (g.x(n), g.x(n), 0.1),
        "momentum_update": (g.x(n), g.x(n), g.x(n), g.h(0.1), g.h(0.9)),
        "adam_update": (g.x(n), g.x(n), g.x(n), g.pos(n), g.h(1e-3), g.h(0.9), g.h(0.999), g.h(1e-8), 3),
    }


def _activations(g, R, D):
    out = {}
    for kind in ("sigmoid", "tanh", "relu", "softplus", "sqrt1p", "exp"):
        z, y = g.x(R, D), np.zeros((R, D), g.dt)
        getattr(cpu, kind + "_fwd")(z, y)
        out[kind + "_fwd"] = (z, g.out(R, D))
        out[kind + "_bwd"] = (z, y, g.x(R, D), g.x(R, D))
    return out


def _elementwise(g, R, D):
    x = lambda *s: g.x(*s)  # noqa: E731
    return {
        "add_fwd": (x(R, D), x(R, D), g.out(R, D)),
        "add_bwd": (x(R, D), x(R, D), x(R, D)),
        "add_bwd[skip]": (x(R, D), g.skip(2), x(R, D)),
        "div_fwd": (x(R, D), g.pos(R, D), g.out(R, D)),
        "div_bwd": (x(R, D), g.pos(R, D), x(R, D), x(R, D), x(R, D), x(R, D)),
        "div_bwd[skip]": (x(R, D), g.pos(R, D), x(R, D), x(R, D), g.skip(2), x(R, D)),
        "pow_fwd": (g.pos(R, D), 1.7, g.out(R, D)),
        "pow_bwd": (g.pos(R, D), -0.6, x(R, D), x(R, D), x(R, D)),
        "mul_fwd": (x(R, D), x(R, D), g.out(R, D)),
        "mul_bwd": (x(R, D), x(R, D), x(R, D), x(R, D), x(R, D)),
        "mul_bwd[skip]": (x(R, D), x(R, D), x(R, D), x(R, D), g.skip(2)),
        "copy_fwd": (x(R, D), g.out(R, D)),
        "copy_bwd": (x(R, D), x(R, D)),
        "row_sum_fwd": (x(R, D), g.out(R)),
        "row_sum_bwd": (x(R), x(R, D)),
    }


def _layers(g, R, D):
    K, I = (4 if D % 4 == 0 else 3), 2 * D
    G = D // K
    x = lambda *s: g.x(*s)  # noqa: E731
    z, y = x(R, D), np.zeros((R, D), g.dt)
    cpu.softmax_fwd(z, K, y)
    return {
        "affine_fwd": (x(R, I), x(I, D), x(D), g.out(R, D)),
        "affine_bwd": (x(R, I), x(I, D), x(R, D), x(R, I), x(I, D), x(D)),
        "broadcast_rows_fwd": (x(D), g.out(R, D)),
        "broadcast_rows_bwd": (x(R, D), x(D)),
        "softmax_fwd": (z, K, g.out(R, D)),
        "softmax_bwd": (z, K, y, x(R, D), x(R, D)),
        "logsumexp_rows": (x(R, D), K, g.out(R, G)),
    }


def _rows(g, R, D):
    B = R // 2   # R rows = B data rows of 2 samples; a reader on 3 rows per data row of the node's 2
    x = lambda *s: g.x(*s)  # noqa: E731
    return {
        "repeat_rows": (x(B, D), 2, g.out(R, D)),
        "fold_rows": (x(R, D), 2, x(B, D)),
        "gather_rows": (x(R, D), 2, g.rowmap(0, 1, 0), g.out(3 * B, D)),
        "fold_into": (x(3 * B, D), g.rowmap(0, 1, 0), 2, x(R, D)),
        "gather1": (x(R), 2, g.rowmap(0, 1, 0), g.out(3 * B)),
        "fold1": (x(3 * B), g.rowmap(0, 1, 0), 2, g.out(R)),
        "fill": (g.out(R), 0.25),
        "add_rows": (x(R), x(R)),
        "enum_bernoulli": (2, g.out(R, min(D, 8))),
        "mul_exp": (x(R), g.pos(R)),
        "score_weights": (g.pos(R), x(R), x(R), g.out(R)),
        "loo_baseline": (x(R), 2, 1, g.out(R)),
        "linear_baseline_fwd": (x(R, D), x(D + 2), 2, x(R)),
        "linear_baseline_bwd": (x(R, D), x(R), 2, x(D + 2)),
        "baseline_residual": (g.pos(R), x(R), x(R), g.out(R)),
        "scale_shift_fwd": (x(R, D), 1.5, -0.25, g.out(R, D)),
        "scale_shift_bwd": (1.5, x(R, D), x(R, D)),
        "add_scaled_rows": (x(R, D), x(R), x(R, D)),
        "mul_rows": (x(R, D), g.pos(R), 3.0),
        "zero2": (x(R, D),),
        "zero1": (x(R),),
        "fill2": (g.out(R, D), 0.25),
        "put_cols": (x(R, D // 2), 1, x(R, D)),
        "take_cols": (x(R, D), 1, g.out(R, D // 2)),
        "add_from_cols": (x(R, D), 1, x(R, D // 2)),
        "add_to_cols": (x(R, D // 2), 1, x(R, D)),
    }


def _relax(g, R, D):
    from ppl.kernels.cpu.relax import relax_size
    K, C, H = (4 if D % 4 == 0 else 3), 2, 4
    a, u = g.x(R, D), g.u(R, D)
    b, bc = np.zeros((R, D), g.dt), np.zeros((R, D), g.dt)
    cpu.relax_sample(a, u, b)
    cpu.relax_categorical_sample(a, u, K, bc)
    phi, ctx = 0.5 * g.x(relax_size(D, C, H)), g.x(R, C)
    return {
        "relax_sample": (a, u, g.out(R, D)),
        "copy_cols": (g.x(R, D // 2), g.x(R, D), 1),
        "relax_categorical_sample": (a, u, K, g.out(R, D)),
        "relax_bwd": (a, u, g.u(R, D), b, g.x(R), g.pos(R), ctx, phi, H, g.x(R, D), g.x(phi.shape[0]), True),
        "relax_categorical_bwd": (a, u, g.u(R, D), bc, g.x(R), g.pos(R), ctx, phi, H, K, g.x(R, D),
                                  g.x(phi.shape[0]), True),
    }


def _rebar(g, R, D):
    from ppl.kernels.cpu.rebar import CONFIGS as C5
    S, K = R // 2, (4 if D % 4 == 0 else 3)   # stride: R // 2 drawn rows per block of the digit, 2 blocks
    N = S * C5 * 2
    a, u, v = g.x(N, D), g.u(N, D), g.u(N, D)
    y, dzt = np.zeros((N, D), g.dt), np.zeros((N, D), g.dt)
    cpu.rebar_forward(a, u, v, S, 1, C5, C5, g.h(-0.3), 0.1, y, dzt)
    f = np.zeros(N, g.dt)
    cpu.cv_flags(S, 1, C5, C5, f)
    outc = np.zeros((N, D), g.dt)
    cpu.relax_rows_categorical(f, g.x(N, D), g.x(N, D), K, g.h(0.3), outc)
    return {
        "rebar_forward": (a, u, v, S, 1, C5, C5, g.h(-0.3), 0.1, g.out(N, D), g.out(N, D)),
        "rebar_weights": (S, 1, C5, C5, g.h(0.7), g.pos(N), g.pos(N)),
        "cv_flags": (S, 1, C5, C5, np.zeros(N, g.dt)),
        "relax_rows_bernoulli": (f, g.x(N, D), g.u(N, D), True, g.h(0.3), g.out(N, D)),
        "relax_rows_bernoulli_bwd": (f, g.u(N, D), g.h(0.3), g.x(N, D), g.x(N, D)),
        "relax_rows_categorical": (f, g.x(N, D), g.x(N, D), K, g.h(0.3), g.out(N, D)),
        "relax_rows_categorical_bwd": (f, outc, K, g.h(0.3), g.x(N, D), g.x(N, D)),
        "relax_rows_normal_bwd": (f, g.x(N, D), g.x(N, D), g.x(N, D), g.x(N, D)),
        "copy1": (g.x(N), g.out(N)),
        "rebar_bwd": (a, np.empty((0, 0), g.dt), dzt, y, g.x(N), g.pos(N), g.x(N, D), S, 1, C5, C5, g.h(0.7),
                      g.h(-0.3), 0.1, g.x(N, D), g.x(1), g.x(1), True),
        "rebar_categorical_forward": (a, u, v, S, 1, C5, C5, K, g.h(0.2), 0.1, g.out(N, D)),
        "rebar_categorical_bwd": (a, u, v, g.x(N), g.pos(N), g.x(N, D), S, 1, C5, C5, K, g.h(0.7), g.h(0.2), 0.1,
                                  g.x(N, D), g.x(1), g.x(1), True),
    }


# family -> (case maker (gen, R, D) -> {kernel: arguments}, shapes)
FAMILIES = {
    "antithetic": (_antithetic, [(32, 64), (4, 6)]),
    "cat_antithetic": (_cat_antithetic, [(32, 64), (4, 6)]),
    "unordered_set": (_unordered_set, [(33, 64), (6, 5)]),   # sets of k = 3 rows
    "dcv": (_dcv, [(32, 64), (4, 6)]),
    "bounds": (_bounds, [(32, 1), (2, 1)]),   # 32 and 2 data rows of K = 4 draws, S = 2
    "price": (_price, [(32, 64), (4, 6)]),
    "costs": (_costs, [(32, 64), (4, 6)]),
    "bernoulli": (_bernoulli, [(32, 64), (4, 6)]),
    "probit": (_probit, [(32, 64), (4, 6)]),
    "normal": (_normal, [(32, 64), (4, 6)]),
    "categorical": (_categorical, [(32, 64), (4, 6)]),
    "lax": (_lax, [(32, 64), (4, 6)]),
    "optim": (_optim, [(66, 64), (4, 6)]),   # 4,224 parameters (the 64-32 SBN's) and 24
    "activations": (_activations, [(32, 64), (4, 6)]),
    "elementwise": (_elementwise, [(32, 64), (4, 6)]),
    "layers": (_layers, [(32, 64), (4, 6)]),
    "rows": (_rows, [(32, 64), (4, 6)]),
    "relax": (_relax, [(32, 64), (4, 6)]),
    "rebar": (_rebar, [(64, 64), (4, 6)]),   # 320 and 20 rows
}
# family -> the module of hand-written kernels it replaced (cpu_<module>.py or cpu/<module>.py), when not its
# own (--old-path: an earlier family file, e.g. the activations before they were declared as ops)
OLD = {"bernoulli": "dists", "probit": "dists", "normal": "dists", "categorical": "dists",
       "activations": "core", "elementwise": "core", "layers": "core"}


MOVED = {"scalar": "math.scalar", "scalar_gamma": "math.gamma", "scalar_groups": "math.groups",
         "scalar_optim": "math.optim", "rng": "math.rng", "conditional": "math.conditional", "blas": "cpu.blas",
         "simd": "cpu.simd", "device": "cuda.device", "cpu": "cpu.core",
         **{f"cpu_{f}": f"cpu.{f}" for f in ("dists", "optim", "noise", "rows", "relax", "rebar", "lax", "train")}}


def load_old(family, rev, path=None):
    """The hand-written kernels a family replaced: `kernels/cpu_<module>.py` at ``rev``, or
    `kernels/cpu/<module>.py` at a revision after kernels/ was split (``OLD``: the module), or
    ``path`` (`kernels/families/<name>.py`: an earlier family file)."""
    module = path[len("kernels/"):-len(".py")] if path else OLD.get(family, family)
    git = lambda path: subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True,  # noqa: E731
                                      text=True)
    shown = git(f"kernels/cpu_{module}.py")
    if module.startswith("families/"):
        shown = git(f"kernels/{module}.py")
        shown.check_returncode()
        src = re.sub(r"^from \.\.", "from ppl.kernels.", shown.stdout, flags=re.M)
        src = re.sub(r"^from \.(\w+)", r"from ppl.kernels.families.\1", src, flags=re.M)
    elif shown.returncode == 0:
        src = shown.stdout
        # its relative imports, to the modules' places since kernels/ was split (math/, cpu/, cuda/)
        src = re.sub(r"^from \.(\w+)", lambda m: f"from ppl.kernels.{MOVED.get(m.group(1), m.group(1))}", src,
                     flags=re.M)
        src = re.sub(r"^from \. import", "from ppl.kernels import", src, flags=re.M)
    else:
        shown = git(f"kernels/cpu/{module}.py")
        shown.check_returncode()
        src = re.sub(r"^from \.\.", "from ppl.kernels.", shown.stdout, flags=re.M)
        src = re.sub(r"^from \.(\w+)", r"from ppl.kernels.cpu.\1", src, flags=re.M)
        src = re.sub(r"^from \. import", "from ppl.kernels.cpu import", src, flags=re.M)
    # the old kernels only: cpu/core.py re-exported the other families' modules, some of them gone since
    src = src.split("\n# the kernels of the other families")[0]
    name = f"ppl.kernels.cpu_old_{family}"
    path = ROOT / ".ci-cache" / f"cpu_old_{family}.py"   # a file of its own: Numba caches by file
    path.parent.mkdir(exist_ok=True)
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def fresh(f):
    """The kernel compiled again from its Python function without the disk cache (Numba does not
    show the machine code of a kernel it loaded from the cache)."""
    from numba import njit
    opts = {k: v for k, v in f.targetoptions.items() if k not in ("cache", "nopython")}
    return njit(**opts)(f.py_func)


def machine_code(f, args):
    """The kernel's assembly for these arguments, symbol and label names and comments dropped."""
    f(*args)
    asm = list(f.inspect_asm().values())[0]
    asm = re.sub(r"\.L\w+|_ZN[\w$.]+", "N", asm)
    lines = (ln.split("#")[0].strip() for ln in asm.splitlines())
    return [ln for ln in lines if ln and not (ln.startswith(".") and not ln.endswith(":"))]


def compare_asm(old, make, R, D):
    for dt in (np.float32, np.float64):
        for name, args in make(Gen(0, dt), R, D).items():
            kernel = name.split("[")[0]
            a, b = machine_code(fresh(getattr(old, kernel)), args), machine_code(fresh(getattr(cpu, kernel)), args)
            print(json.dumps({"bench": "declared_kernels", "case": f"{name} {np.dtype(dt).name}",
                              "metric": "same_machine_code", "value": a == b, "unit": "lines",
                              "baseline": len(a), "ratio": round(len(b) / max(len(a), 1), 3)}), flush=True)


def per_call(f, args, calls):
    t = time.perf_counter()
    for _ in range(calls):
        f(*args)
    return (time.perf_counter() - t) / calls * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("--rev", required=True, help="a git revision that has kernels/cpu_<family>.py")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--only", default="", help="kernels to time (comma-separated; all by default)")
    ap.add_argument("--asm", action="store_true", help="compare the machine code instead of timing")
    ap.add_argument("--old-path", default=None, help="the old module's path at --rev (kernels/families/<name>.py)")
    a = ap.parse_args()
    old = load_old(a.family, a.rev, a.old_path)
    make, shapes = FAMILIES[a.family]
    if a.asm:
        return compare_asm(old, make, *shapes[0])
    only = set(filter(None, a.only.split(",")))
    for R, D in shapes:
        for dt in (np.float32, np.float64):
            for name, args in make(Gen(0, dt), R, D).items():
                if only and name not in only:
                    continue
                kernel = name.split("[")[0]   # "name[variant]": the same kernel, other arguments
                fo, fn = getattr(old, kernel), getattr(cpu, kernel)
                fo(*args), fn(*args)   # compile / load
                t_old, t_new = [], []
                for _ in range(a.rounds):
                    t_old.append(per_call(fo, args, a.calls))
                    t_new.append(per_call(fn, args, a.calls))
                o, n = statistics.median(t_old), statistics.median(t_new)
                print(json.dumps({"bench": "declared_kernels", "case": f"{name} {R}x{D} {np.dtype(dt).name}",
                                  "metric": "median_us", "value": round(n, 4), "unit": "us",
                                  "baseline": round(o, 4), "ratio": round(n / o, 3)}), flush=True)


if __name__ == "__main__":
    main()
