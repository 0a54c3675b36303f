"""Antithetic Bernoulli kernels for ARM and DisARM (CPU).

A drawn row becomes a pair of rows (digit 0 and 1 of the row index at `stride`) sharing one
uniform u per unit: digit 0 holds b = 1[u < sigmoid(a)], digit 1 holds b~ = 1[u > sigmoid(-a)].
  ARM    (Yin & Zhou 2019):        g_a = (f(b~) - f(b)) (u - 1/2)
  DisARM (Dong, Mnih & Tucker 2020): g_a = 1/2 (f(b~) - f(b)) (-1)^b 1[b != b~] sigmoid(|a|)
f is the per-row sum of the node's downstream costs. Each row of the pair receives its row
weight times g_a, so the pair's total is the drawn row's weight times the estimate.
"""
from numba import njit

from .scalar import antithetic_bit, arm_coef, disarm_coef


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def antithetic_bernoulli(logits, u, stride, out):
    for r in range(out.shape[0]):
        tilde = (r // stride) % 2
        for j in range(out.shape[1]):
            out[r, j] = antithetic_bit(logits[r, j], u[r, j], tilde)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def arm_grad(u, L, rw, stride, ga):
    for r in range(ga.shape[0]):
        if (r // stride) % 2:
            continue
        r1 = r + stride
        diff = L[r1] - L[r]
        for j in range(ga.shape[1]):
            c = arm_coef(diff, u[r, j])
            ga[r, j] += rw[r] * c
            ga[r1, j] += rw[r1] * c


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def disarm_grad(logits, b, L, rw, stride, ga):
    for r in range(ga.shape[0]):
        if (r // stride) % 2:
            continue
        r1 = r + stride
        half_diff = 0.5 * (L[r1] - L[r])
        for j in range(ga.shape[1]):
            if b[r, j] != b[r1, j]:
                c = disarm_coef(half_diff, logits[r, j], b[r, j])
                ga[r, j] += rw[r] * c
                ga[r1, j] += rw[r1] * c


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def scale_rows(rw, factor):
    for r in range(rw.shape[0]):
        rw[r] *= factor
