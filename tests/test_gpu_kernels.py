"""CUDA twins (kernels/gpu*.py) against their CPU modules, kernel by kernel.

Runs under the CUDA simulator when there is no GPU (tests/conftest.py). Every public
function of cpu.py, cpu_noise.py, cpu_rows.py and cpu_antithetic.py has a twin with the
same name and arguments, and a case here: the same random inputs go to both, then EVERY
array argument (outputs, accumulated gradients, in-place state, and the inputs, which must
be left alone) and the return value are compared. Gradients start non-zero (so ``+=`` is
checked) and some are passed as ``shape[0] == 0`` (skipped).

Tolerances (simulator):
* float64: rtol 1e-9 (291 of 296 compared arrays are bit-identical, the others within 1e-12).
  The per-element math is the same Python source and the simulator's ``math`` is the libm the
  CPU build calls; the differences are summation orders (affine products vs BLAS, one-block
  tree reductions vs serial loops), a few ulp of the result, more where a sum cancels. The
  bound is 1e-9, not 1e-12, for this machine's windows of libm results ~1e-11 off in every
  process (tests/machine.py), which made a kernel's two runs 1.4e-11 apart; a kernel error
  is orders of magnitude larger.
* float32: rtol 2e-6, i.e. a few ulp (282 of 296 bit-identical). The simulator evaluates
  ``math.*`` of a float32 in double and rounds once where the CPU calls the float32 libm
  (expf, log1pf, ...), and it follows NumPy's promotion (float32 * Python float stays
  float32) where numba promotes to float64 (the row kernels' float64 literals).
On a real GPU (not testable here) float64 libm calls go to libdevice (<= 2 ulp apart from
glibc) and NVVM contracts a * b + c into FMA by default, so expect a few ulp as well.
* noise fills: identical bits for both dtypes: uniforms and the Philox words are integer
  math; the float32 transforms are rng.py's polynomial log/sincos in float32 NumPy scalars;
  float64 transforms call the same libm.
"""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
from machine import RTOL_LIBM
from numba import cuda
from numba.core.registry import CPUDispatcher
from numpy.testing import assert_allclose, assert_array_equal

from ppl.kernels import (cpu, cpu_antithetic, cpu_cat_antithetic, cpu_costs, cpu_dcv, cpu_dists, cpu_laplace,
                         cpu_lax, cpu_noise, cpu_optim, cpu_poisson, cpu_rows, cpu_st, cpu_unordered_set)
from ppl.kernels import (gpu, gpu_antithetic, gpu_cat_antithetic, gpu_costs, gpu_dcv, gpu_dists, gpu_laplace,
                         gpu_lax, gpu_noise, gpu_optim, gpu_poisson, gpu_rows, gpu_st, gpu_unordered_set)
from ppl.kernels.cpu_relax import relax_size


pytestmark = pytest.mark.cuda
ON_DEVICE = os.environ.get("NUMBA_ENABLE_CUDASIM") != "1"   # a real GPU, not the simulator

R, D, K, I, M = 4, 6, 3, 5, 3  # rows, columns (G = D // K = 2 groups), affine inputs, NCE noise
G = D // K
PAIRS = [(cpu, gpu), (cpu_dists, gpu_dists), (cpu_costs, gpu_costs), (cpu_optim, gpu_optim),
         (cpu_noise, gpu_noise), (cpu_rows, gpu_rows), (cpu_antithetic, gpu_antithetic),
         (cpu_laplace, gpu_laplace), (cpu_poisson, gpu_poisson), (cpu_st, gpu_st), (cpu_dcv, gpu_dcv),
         (cpu_cat_antithetic, gpu_cat_antithetic), (cpu_unordered_set, gpu_unordered_set), (cpu_lax, gpu_lax)]


def public_kernels(mod):
    """The @njit functions a CPU module defines (not imports) under a public name."""
    return sorted(n for n, v in vars(mod).items()
                  if isinstance(v, CPUDispatcher) and not n.startswith("_")
                  and v.py_func.__module__ == mod.__name__)


# ------------------------------------------------------------------------------ inputs
class Gen:
    def __init__(self, seed, dtype):
        self.rng = np.random.default_rng(seed)
        self.dt = dtype

    def x(self, *shape):  # any real
        return self.rng.normal(size=shape).astype(self.dt)

    def pos(self, *shape):  # scales
        return self.rng.uniform(0.5, 2.0, size=shape).astype(self.dt)

    def u(self, *shape):  # uniforms
        return self.rng.uniform(0.02, 0.98, size=shape).astype(self.dt)

    def bits(self, *shape):
        return self.rng.integers(0, 2, size=shape).astype(self.dt)

    def onehot(self, rows, groups, k):
        out = np.zeros((rows, groups * k), self.dt)
        idx = self.rng.integers(0, k, size=(rows, groups))
        for r in range(rows):
            for g in range(groups):
                out[r, g * k + idx[r, g]] = 1
        return out

    def out(self, *shape):  # garbage a forward kernel must overwrite
        return np.full(shape, 7.0, self.dt)

    def skip(self, ndim):
        return np.empty((0,) * ndim, self.dt)

    def rowmap(self, *rows):  # a row map as the step passes it (Lowering.row_map)
        return np.array(rows, self.dt)

    def h(self, v):  # a hyper-parameter as a 1-element array
        return np.array([v], self.dt)


def act_case(name):
    def case(g):
        z = g.x(R, D)
        out = g.out(R, D)
        getattr(cpu, name + "_fwd")(z, out)
        return (z, out, g.x(R, D), g.x(R, D))
    return case


# name -> (case builder, indices of arguments not compared: scratch the CPU uses, GPU not)
CASES = {
    # ---- cpu.py
    "affine_fwd": lambda g: (g.x(R, I), g.x(I, D), g.x(D), g.out(R, D)),
    "affine_bwd": lambda g: (g.x(R, I), g.x(I, D), g.x(R, D), g.x(R, I), g.x(I, D), g.x(D)),
    "sigmoid_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "sigmoid_bwd": act_case("sigmoid"),
    "tanh_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "tanh_bwd": act_case("tanh"),
    "relu_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "relu_bwd": act_case("relu"),
    "softplus_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "softplus_bwd": act_case("softplus"),
    "sqrt1p_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "sqrt1p_bwd": act_case("sqrt1p"),
    "exp_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "exp_bwd": act_case("exp"),
    "add_fwd": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "add_bwd": lambda g: (g.x(R, D), g.x(R, D), g.skip(2)),
    "mul_fwd": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "mul_bwd": lambda g: (g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "div_fwd": lambda g: (g.x(R, D), g.pos(R, D), g.out(R, D)),
    "div_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "pow_fwd": lambda g: (g.pos(R, D), 1.7, g.out(R, D)),
    "pow_bwd": lambda g: (g.pos(R, D), -0.6, g.x(R, D), g.x(R, D), g.x(R, D)),
    "broadcast_rows_fwd": lambda g: (g.x(D), g.out(R, D)),
    "broadcast_rows_bwd": lambda g: (g.x(R, D), g.x(D)),
    "copy_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "copy_bwd": lambda g: (g.x(R, D), g.x(R, D)),
    "row_sum_fwd": lambda g: (g.x(R, D), g.out(R)),
    "row_sum_bwd": lambda g: (g.x(R), g.x(R, D)),
    "bernoulli_sample": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "bernoulli_log_prob": lambda g: (3 * g.x(R, D), g.u(R, D), g.out(R)),
    "bernoulli_log_prob_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_st_bwd": lambda g: (g.x(R, D), g.x(R, D), g.x(R, D)),
    "binary_concrete_sample": lambda g: (g.x(R, D), g.x(R, D), g.h(0.7), g.out(R, D)),
    "binary_concrete_bwd": lambda g: (g.x(R, D), g.x(R, D), g.h(0.7), g.u(R, D), g.x(R, D),
                                      g.x(R, D), g.x(1)),
    "probit_sample": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "probit_log_prob": lambda g: (4 * g.x(R, D), g.u(R, D), g.out(R)),
    "probit_log_prob_bwd": lambda g: (4 * g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "probit_st_bwd": lambda g: (g.x(R, D), g.x(R, D), g.x(R, D)),
    "normal_sample": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R, D)),
    "poisson_sample": lambda g: (4 * g.pos(R, D), g.u(R, D), g.out(R, D)),
    "poisson_log_prob": lambda g: (4 * g.pos(R, D), np.floor(6 * g.pos(R, D)), g.out(R)),
    "poisson_log_prob_bwd": lambda g: (4 * g.pos(R, D), np.floor(6 * g.pos(R, D)), g.x(R), g.x(R, D), g.skip(2)),
    "laplace_sample": lambda g: (g.x(R, D), g.pos(R, D), g.u(R, D), g.out(R, D)),
    "laplace_sample_bwd": lambda g: (g.u(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "laplace_log_prob": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R)),
    "laplace_log_prob_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.x(R, D), g.skip(2),
                                       g.x(R, D)),
    "normal_sample_bwd": lambda g: (g.x(R, D), g.x(R, D), g.skip(2), g.x(R, D)),
    "normal_log_prob": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R)),
    "normal_log_prob_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.x(R, D),
                                      g.x(R, D), g.x(R, D)),
    "categorical_sample": lambda g: (g.x(R, D), g.x(R, D), K, g.out(R, D)),
    "categorical_inverse_cdf_sample": lambda g: (g.x(R, D), g.u(R, G), K, g.out(R, D)),
    "categorical_log_prob": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.out(R)),
    "categorical_log_prob_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.x(R),
                                           g.x(R, D), g.x(R, D)),
    "gumbel_softmax_sample": lambda g: (g.x(R, D), g.x(R, D), g.h(0.5), K, g.out(R, D)),
    "gumbel_softmax_bwd": lambda g: gumbel_softmax_bwd_case(g),
    "softmax_fwd": lambda g: (g.x(R, D), K, g.out(R, D)),
    "softmax_bwd": lambda g: softmax_bwd_case(g),
    "logsumexp_rows": lambda g: (g.x(R, D), K, g.out(R, G)),
    "gaussian_kl_std": lambda g: (g.x(R, D), g.pos(R, D), g.out(R)),
    "gaussian_kl_std_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "gaussian_kl": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.pos(R, D), g.out(R)),
    "gaussian_kl_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.pos(R, D), g.x(R),
                                  g.x(R, D), g.x(R, D), g.skip(2), g.x(R, D)),
    "bernoulli_nll": lambda g: (3 * g.x(R, D), g.bits(R, D), g.out(R)),
    "bernoulli_nll_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_log_prob_keep": lambda g: (3 * g.x(R, D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_log_prob_kept_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.u(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_nll_keep": lambda g: (3 * g.x(R, D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_log_prob_keep_const": lambda g: (3 * g.x(D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_nll_keep_const": lambda g: (3 * g.x(D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_nll_kept_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.u(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    # logits once per data row (R // 2 rows), each repeated on 2 rows; the kept sigma has R // 2 rows
    "bernoulli_sample_rep": lambda g: (3 * g.x(R // 2, D), 2, g.u(R, D), g.out(R, D)),
    "bernoulli_log_prob_keep_rep": lambda g: (3 * g.x(R // 2, D), 2, g.bits(R, D), g.out(R), g.out(R // 2, D)),
    "bernoulli_nll_keep_rep": lambda g: (3 * g.x(R // 2, D), 2, g.bits(R, D), g.out(R), g.out(R // 2, D)),
    "bernoulli_log_prob_kept_bwd_rep": lambda g: (g.x(R // 2, D), 2, g.bits(R, D), g.u(R // 2, D), g.x(R),
                                                  g.x(R, D), g.x(R, D)),
    "bernoulli_nll_kept_bwd_rep": lambda g: (g.x(R // 2, D), 2, g.bits(R, D), g.u(R // 2, D), g.x(R),
                                             g.x(R, D), g.x(R, D)),
    "gaussian_nll": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R)),
    "gaussian_nll_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.x(R, D),
                                   g.x(R, D), g.x(R, D)),
    "softmax_xent": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.out(R)),
    "softmax_xent_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.x(R), g.x(R, D),
                                   g.x(R, D)),
    "nce_logistic": lambda g: (g.x(R, D), g.x(R, M), g.x(R, D), g.x(R, M), g.out(R)),
    "nce_logistic_bwd": lambda g: (g.x(R, D), g.x(R, M), g.x(R, D), g.x(R, M), g.x(R),
                                   g.x(R, D), g.x(R, M)),
    "sgd_update": lambda g: (g.x(9), g.x(9), g.h(0.1)),
    "momentum_update": lambda g: (g.x(9), g.x(9), g.x(9), g.h(0.1), g.h(0.9)),
    "adam_update": lambda g: (g.x(9), g.x(9), g.x(9), g.pos(9), g.h(0.01), g.h(0.9),
                              g.h(0.999), g.h(1e-8), 3),
    # ---- cpu_rows.py
    "repeat_rows": lambda g: (g.x(2, D), 2, g.out(4, D)),
    "fold_rows": lambda g: (g.x(6, D), 3, g.x(2, D)),
    "expand_rows": lambda g: (g.x(6, D), 3),
    # a node on 3 rows per data row read on 5 (and its cotangent summed back); 4 data rows
    "gather_rows": lambda g: (g.x(12, D), 3, g.rowmap(0, 1, 2, 0, 0), g.out(20, D)),
    "fold_into": lambda g: (g.x(20, D), g.rowmap(0, 1, 2, 0, 0), 3, g.x(12, D)),
    "gather1": lambda g: (g.x(12), 3, g.rowmap(0, 1, 2, 0, 0), g.out(20)),
    "fold1": lambda g: (g.x(20), g.rowmap(0, 1, 2, 0, 0), 3, g.out(12)),
    "fill": lambda g: (g.out(R), 0.25),
    "weighted_total": lambda g: (g.pos(R), g.x(R), g.x(R)),
    "add_rows": lambda g: (g.x(R), g.x(R)),
    "enum_bernoulli": lambda g: (2, g.out(8, 3)),
    "enum_categorical": lambda g: (2, K, g.out(18, D)),
    "mul_exp": lambda g: (g.x(R), g.pos(R)),
    "score_weights": lambda g: (g.pos(R), g.x(R), g.x(R), g.out(R)),
    "loo_baseline": lambda g: (g.x(12), 3, 2, g.out(12)),
    "iwae_bound": lambda g: (g.x(12), 3, 2, g.out(12), g.out(12)),
    "vimco_baseline": lambda g: (g.x(24), 4, 2, g.out(24)),
    "iwae_swap_one": lambda g: (g.x(24), g.x(24), 3, 4, 2, g.out(24)),
    "config_weights": lambda g: (4, 0, 2, 0.125, g.out(R)),
    "loo_baseline_marginal": lambda g: (g.x(24), g.pos(24), 3, 4, (2,), (2,), g.out(24)),
    "moving_average_baseline": lambda g: (g.x(R), g.pos(R), np.array([0, 0.3, 0, 0], g.dt),
                                          1, 0.9, g.out(R), True),  # first step: seeds
    "linear_baseline_fwd": lambda g: (g.x(R, D), g.x(10), 2, g.x(R)),
    "linear_baseline_bwd": lambda g: (g.x(R, D), g.x(R), 2, g.x(10)),
    "baseline_residual": lambda g: (g.pos(R), g.x(R), g.x(R), g.out(R)),
    "add_sum_to": lambda g: (g.x(R), g.x(3), 1),
    "scale_shift_fwd": lambda g: (g.x(R, D), 1.5, -0.25, g.out(R, D)),
    "scale_shift_bwd": lambda g: (1.5, g.x(R, D), g.x(R, D)),
    "add_scaled_rows": lambda g: (g.x(R, D), g.x(R), g.x(R, D)),
    "mul_rows": lambda g: (g.x(R, D), g.pos(R), 3.0),
    "zero2": lambda g: (g.x(R, D),),
    "fill2": lambda g: (g.out(R, D), 0.25),
    "put_cols": lambda g: (g.x(R, 2), 3, g.x(R, D)),
    "take_cols": lambda g: (g.x(R, D), 1, g.out(R, 3)),
    "add_from_cols": lambda g: (g.x(R, D), 2, g.x(R, 3)),
    "add_to_cols": lambda g: (g.x(R, 3), 2, g.x(R, D)),
    "zero1": lambda g: (g.x(R),),
    "all_positive": lambda g: (g.pos(R, D),),
    "all_finite": lambda g: (g.x(R, D),),
    "all_finite2": lambda g: (g.x(R, D),),
    # ---- cpu_antithetic.py
    "antithetic_bernoulli": lambda g: (g.x(R, D), g.u(R, D), 1, g.out(R, D)),
    "arm_grad": lambda g: (g.u(R, D), g.x(R), g.pos(R), 2, g.x(R, D)),
    "disarm_grad": lambda g: disarm_case(g),
    # pair digit at stride 1, an enumerated child's digit (size 2) at stride 2: 8 rows = 2 drawn rows
    "arm_grad_marginal": lambda g: (g.u(8, D), g.x(8), g.pos(8), 1, (2,), (2,), g.x(8, D)),
    "disarm_grad_marginal": lambda g: disarm_marginal_case(g),
    "scale_rows": lambda g: (g.pos(R), 0.5),
    # ---- cpu_cat_antithetic.py (categorical DisARM: pairs at stride 1; 16 rows so that pairs part)
    "cat_antithetic_sample": lambda g: (2 * g.x(16, D), g.u(16, D), 1, K, g.out(16, D)),
    "cat_disarm_grad": lambda g: cat_disarm_case(g),
    "cat_disarm_grad_marginal": lambda g: cat_disarm_case(g, marginal=True),
    # ---- cpu_unordered_set.py (sets of k = 3 of 5 classes at stride 1: 4 sets)
    "us_forward": lambda g: us_case(g)[:8],
    "us_grad": lambda g: us_case(g)[8:],
    # ---- cpu_st.py (ReinMax, Gumbel-Rao: 3 conditional draws per unit, gapped ST)
    "reinmax_bernoulli_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.h(1.3), g.x(R, D), g.x(R, D)),
    "reinmax_categorical_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), g.h(1.3), g.x(R, D), K, g.x(R, D)),
    "gumbel_rao_bernoulli_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.u(R, 3 * D), g.h(0.7), 3, g.x(R, D),
                                           g.x(R, D)),
    "gumbel_rao_categorical_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), g.u(R, 3 * D), g.h(0.7), 3, g.x(R, D),
                                             K, g.out(R, D), g.x(R, D)),
    "gapped_st_bernoulli_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.h(0.8), 0.6, g.x(R, D), g.x(R, D)),
    "gapped_st_categorical_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), g.h(0.8), 0.6, g.x(R, D), K, g.x(R, D)),
    # ---- cpu_dcv.py (2 samples x a digit of size 2 below the node, marginalised)
    "double_cv_grad": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.pos(R), 2, 2, (1,), (2,), g.h(-0.8),
                                 False, g.out(R), g.out(R), g.out(R), g.out(R, D), g.x(R, D), g.skip(1)),
    # ---- cpu_lax.py (a data context of 2 columns, 4 hidden units; phi's variance gradient trained)
    "lax_normal_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.pos(R), g.x(R, 2),
                                 0.5 * g.x(relax_size(D, 2, 4)), 4, g.x(R, D), g.x(R, D), g.x(relax_size(D, 2, 4)),
                                 True),
}


def gumbel_softmax_bwd_case(g):
    logits, gum, tau = g.x(R, D), g.x(R, D), g.h(0.5)
    out = g.out(R, D)
    cpu.gumbel_softmax_sample(logits, gum, tau, K, out)
    return (logits, gum, tau, K, out, g.x(R, D), g.x(R, D), g.x(1))


def softmax_bwd_case(g):
    z = g.x(R, D)
    out = g.out(R, D)
    cpu.softmax_fwd(z, K, out)
    return (z, K, out, g.x(R, D), g.x(R, D))


def disarm_case(g):
    logits, u = g.x(R, D), g.u(R, D)
    b = g.out(R, D)
    cpu_antithetic.antithetic_bernoulli(logits, u, 1, b)
    return (logits, b, g.x(R), g.pos(R), 1, g.x(R, D))


def cat_disarm_case(g, marginal=False):
    """Coupled one-hot pairs drawn by the CPU sampler (the pair's rows share their logits);
    marginal: an enumerated child's digit (size 2) at stride 2 above the pair digit."""
    n = 16
    logits, u = np.repeat(2 * g.x(n // 2, D), 2, axis=0), np.repeat(g.u(n // 2, D), 2, axis=0)
    if marginal:   # rows r and r + 2 belong to one member: the same draw
        logits[2::4], u[2::4] = logits[0::4], u[0::4]
        logits[3::4], u[3::4] = logits[1::4], u[1::4]
    v = g.out(n, D)
    cpu_cat_antithetic.cat_antithetic_sample(logits, u, 1, K, v)
    digits = ((2,), (2,)) if marginal else ()
    return (logits, v, g.x(n), g.pos(n), 1, *digits, K, g.x(n, D))


def us_case(g):
    """us_forward's arguments (4 sets of k = 3 of 5 classes, stride 1; a set's rows share logits
    and noise), then us_grad's on the table and weights the CPU forward left."""
    k, Kc, n = 3, 5, 12
    logits, gum = np.repeat(2 * g.x(n // k, Kc), k, axis=0), np.repeat(g.x(n // k, Kc), k, axis=0)
    fwd = (logits, gum, 1, k, Kc, g.out(n, cpu_unordered_set.table_width(k)), g.out(n, Kc), g.pos(n))
    ws, rw = fwd[5].copy(), fwd[7].copy()
    cpu_unordered_set.us_forward(logits, gum, 1, k, Kc, ws, g.out(n, Kc), rw)
    return fwd + (logits, ws, g.x(n), rw, 1, k, Kc, g.x(n, Kc))


def disarm_marginal_case(g):
    logits, u = g.x(8, D), g.u(8, D)
    b = g.out(8, D)
    cpu_antithetic.antithetic_bernoulli(logits, u, 1, b)
    return (logits, b, g.x(8), g.pos(8), 1, (2,), (2,), g.x(8, D))


# extra variants: the other branch of a kernel (value-returning ones, skipped gradients,
# first / later step of the running baseline, plain-number hyper-parameters)
VARIANTS = {
    "all_positive[nan]": ("all_positive", lambda g: (np.where(np.arange(D) == 3, np.nan,
                                                              g.pos(R, D)).astype(g.dt),)),
    "all_finite[inf]": ("all_finite", lambda g: (np.where(np.arange(D) == 2, np.inf,
                                                          g.x(R, D)).astype(g.dt),)),
    "all_finite2[nan]": ("all_finite2", lambda g: (np.where(np.arange(D) == 4, np.nan,
                                                            g.x(R, D)).astype(g.dt),)),
    "all_finite2[-inf]": ("all_finite2", lambda g: (np.where(np.arange(D) == 0, -np.inf,
                                                             g.x(R, D)).astype(g.dt),)),
    "loo_baseline_marginal[two digits, zero weights]": ("loo_baseline_marginal", lambda g: (
        g.x(48), np.where(np.arange(48) % 8 < 4, 0.0, g.pos(48)).astype(g.dt), 2, 8, (1, 4), (2, 2),
        g.out(48))),
    "moving_average_baseline[later]": ("moving_average_baseline", lambda g: (
        g.x(R), g.pos(R), np.array([0, 0.3, 1, 0], g.dt), 1, 0.9, g.out(R), True)),
    "moving_average_baseline[frozen]": ("moving_average_baseline", lambda g: (
        g.x(R), g.pos(R), g.x(4), 1, 0.9, g.out(R), False)),
    "binary_concrete_bwd[skip]": ("binary_concrete_bwd", lambda g: (
        g.x(R, D), g.x(R, D), 0.7, g.u(R, D), g.x(R, D), g.x(R, D), g.skip(1))),
    "gumbel_softmax_bwd[skip]": ("gumbel_softmax_bwd", lambda g: (
        g.x(R, D), g.x(R, D), 0.5, K, g.u(R, D), g.x(R, D), g.skip(2), g.x(1))),
    "affine_bwd[skip]": ("affine_bwd", lambda g: (
        g.x(R, I), g.x(I, D), g.x(R, D), g.skip(2), g.x(I, D), g.skip(1))),
    "sgd_update[float]": ("sgd_update", lambda g: (g.x(9), g.x(9), 0.1)),
    # alpha's variance gradient (float64 only: a sum of products, a few float32 ulps apart in cancellation)
    "double_cv_grad[train]": ("double_cv_grad", lambda g: (
        g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.pos(R), 2, 2, (1,), (2,), g.h(-0.8), True, g.out(R), g.out(R),
        g.out(R), g.out(R, D), g.x(R, D), g.out(R))),
    "double_cv_grad[plain]": ("double_cv_grad", lambda g: (
        g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.pos(R), 2, 1, (1,), (1,), g.h(-0.8), False, g.out(R), g.out(R),
        g.out(R), g.out(R, D), g.x(R, D), g.skip(1))),
    "lax_normal_bwd[no context, scale skipped, untrained]": ("lax_normal_bwd", lambda g: (
        g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.pos(R), g.skip(2), 0.5 * g.x(relax_size(D, 0, 3)), 3,
        g.x(R, D), g.skip(2), g.x(relax_size(D, 0, 3)), False)),
    "probit_log_prob_bwd[skip]": ("probit_log_prob_bwd", lambda g: (
        4 * g.x(R, D), g.bits(R, D), g.x(R), g.skip(2), g.x(R, D))),
}
FLOAT32 = ["sigmoid_bwd", "bernoulli_log_prob", "normal_log_prob_bwd", "gumbel_softmax_bwd",
           "softmax_xent_bwd", "adam_update", "gaussian_kl_bwd", "probit_log_prob_bwd", "laplace_sample_bwd",
           "laplace_log_prob_bwd", "reinmax_bernoulli_bwd", "reinmax_categorical_bwd", "gumbel_rao_bernoulli_bwd",
           "gumbel_rao_categorical_bwd", "gapped_st_bernoulli_bwd", "gapped_st_categorical_bwd", "double_cv_grad",
           "cat_antithetic_sample", "cat_disarm_grad", "cat_disarm_grad_marginal", "us_forward", "us_grad"]
NOISE = ["fill_uniform", "fill_normal", "fill_logistic", "fill_gumbel",
         "fill_bernoulli_logit", "fill_bernoulli_prob"]
MODULE_OF = {n: (c, g) for c, g in PAIRS for n in public_kernels(c)}


def to_device(a):
    return cuda.to_device(a) if isinstance(a, np.ndarray) else a


def check(name, builder, dtype, ignore=(), seed=0):
    """Run the CPU kernel and its twin on the same inputs; compare every array and the result."""
    cmod, gmod = MODULE_OF[name]
    built = builder(Gen(seed, dtype))
    c_args = [a.copy() if isinstance(a, np.ndarray) else a for a in built]
    g_args = [to_device(a) for a in built]
    c_ret = getattr(cmod, name)(*c_args)
    g_ret = getattr(gmod, name)(*g_args)
    tol = dict(rtol=RTOL_LIBM, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)

    def close(got, want, what):
        assert_allclose(got, want, err_msg=what, **tol)

    for i, (c, gd) in enumerate(zip(c_args, g_args)):
        if isinstance(c, np.ndarray) and i not in ignore:
            close(gd.copy_to_host(), c, f"{name}: argument {i}")
    if c_ret is None:
        assert g_ret is None, name
    elif isinstance(c_ret, (bool, np.bool_)):
        assert g_ret is bool(c_ret), name
    else:
        close(g_ret, c_ret, f"{name}: returned value")


def _builder(name):
    spec = CASES[name]
    return spec if callable(spec) else spec[0], () if callable(spec) else spec[1]


# ------------------------------------------------------------------------------ tests
def test_every_public_cpu_kernel_has_a_twin_and_a_case():
    for cmod, gmod in PAIRS:
        for name in public_kernels(cmod):
            assert name in CASES or name in NOISE, f"{cmod.__name__}.{name} has no parity case"
            twin = getattr(gmod, name, None)
            assert callable(twin), f"{gmod.__name__} lacks {name}"
            c_params = list(inspect.signature(getattr(cmod, name).py_func).parameters)
            g_params = list(inspect.signature(twin).parameters)
            assert g_params == c_params, f"{name}: {g_params} != {c_params}"


def test_cpu_and_gpu_reexport_the_kernel_families():
    """The generated step calls every kernel as ``K_.<name>`` with ``K_`` cpu or gpu: the kernels
    kept in modules of their own are re-exported there, the very same functions."""
    for cmod, gmod in [(cpu_dists, gpu_dists), (cpu_costs, gpu_costs), (cpu_optim, gpu_optim),
                       (cpu_laplace, gpu_laplace), (cpu_poisson, gpu_poisson), (cpu_st, gpu_st),
                       (cpu_dcv, gpu_dcv), (cpu_cat_antithetic, gpu_cat_antithetic),
                       (cpu_unordered_set, gpu_unordered_set), (cpu_lax, gpu_lax)]:
        for name in public_kernels(cmod):
            assert getattr(cpu, name, None) is getattr(cmod, name), f"cpu lacks {cmod.__name__}.{name}"
            assert getattr(gpu, name, None) is getattr(gmod, name), f"gpu lacks {gmod.__name__}.{name}"


@pytest.mark.parametrize("name", sorted(n for n in CASES if n in MODULE_OF))
def test_parity_float64(name):
    build, ignore = _builder(name)
    check(name, build, np.float64, ignore)


@pytest.mark.parametrize("name", FLOAT32)
def test_parity_float32(name):
    build, ignore = _builder(name)
    check(name, build, np.float32, ignore)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parity_variants(variant):
    name, build = VARIANTS[variant]
    check(name, build, np.float64, ())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fill", NOISE)
def test_noise_streams_identical(fill, dtype):
    """Same (seed, stream, row, col, step) -> same values (bit for bit, float32 transforms within
    2 ulp; on a GPU float32 and float64 transforms within 8 ulp); 7 columns exercise a
    partial Philox block for both lane counts, and a seed above 2**63 both key words."""
    gen = Gen(1, dtype)
    rows, cols = 3, 7
    for seed, stream, step in [(12345, 3, 0), (np.uint64(2**64 - 5), 17, 2**32 + 9)]:
        c_out = gen.out(rows, cols)
        g_out = cuda.to_device(gen.out(rows, cols))
        if fill.startswith("fill_bernoulli"):
            x = gen.x(rows, cols) if fill.endswith("logit") else gen.u(rows, cols)
            getattr(cpu_noise, fill)(c_out, x, seed, stream, step)
            getattr(gpu_noise, fill)(g_out, cuda.to_device(x), seed, stream, step)
        else:
            getattr(cpu_noise, fill)(c_out, seed, stream, step)
            getattr(gpu_noise, fill)(g_out, seed, stream, step)
        if (dtype == np.float32 or ON_DEVICE) and fill not in ("fill_uniform",) and not fill.startswith("fill_bernoulli"):
            # float32 transforms may differ by an ulp: seen between the CPU and the simulator after
            # other tests ran in the same process; a GPU's FMAs do the same, and on a GPU the float64
            # transforms call libdevice's log / sincos (measured on an H100: up to 4 ulp from glibc,
            # where log(u) - log1p(-u) cancels); uniforms are integer math and bit-identical everywhere
            np.testing.assert_array_max_ulp(g_out.copy_to_host(), c_out, maxulp=8 if ON_DEVICE else 2)
        else:
            assert_array_equal(g_out.copy_to_host(), c_out, err_msg=f"{fill} seed {seed}")


def test_noise_rejects_bad_arrays():
    with pytest.raises(ValueError, match="out's shape"):
        gpu_noise.fill_bernoulli_logit(cuda.to_device(np.zeros((2, 3))),
                                       cuda.to_device(np.zeros((3, 2))), 1, 0, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        gpu_noise.fill_uniform(cuda.to_device(np.zeros((2, 3), np.int64)), 1, 0, 0)


def test_import_without_cuda_and_clear_error():
    """Without a GPU and without the simulator the modules import; a call says what to do."""
    code = ("import numpy as np\n"
            "from numba import cuda\n"
            "from ppl.kernels import gpu, gpu_noise, gpu_rows, gpu_antithetic\n"
            "if cuda.is_available():\n"
            "    print('HAS-GPU')\n"
            "else:\n"
            "    try:\n"
            "        gpu_rows.zero1(np.zeros(3))\n"
            "    except RuntimeError as e:\n"
            "        print(e)\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    if "HAS-GPU" not in res.stdout:
        assert "no CUDA device was found" in res.stdout
        assert "NUMBA_ENABLE_CUDASIM=1" in res.stdout
