"""RELAX's control-variate network, for both targets and every estimator that trains one (RELAX
for Bernoulli and Categorical units, kernels/families/relax.py; LAX for Normal units,
kernels/families/lax.py): c(z, x) = w2 . tanh(W1 z + U x + b1) + c0 on a node's values z and its
data context x, its gradient in z, and the gradients in phi of c and of the mixed derivative
d^2 c / dphi dz the variance gradients need.

Parameter vector phi (flat): W1 (H, D) | U (H, C) | b1 (H) | w2 (H) | c0 (1). The helpers are
named `_name` so that they are inlined into their callers (kernels/_link.py, INLINE_HELPERS).
"""
import math

from numba import njit

_REASSOC = {"reassoc", "contract"}   # sums in any order (vectorised); no finite-values assumption


def relax_size(D, C, H):
    return H * D + H * C + 2 * H + 1


@njit(cache=True)
def _cv(z, ctx, r, phi, D, C, H, h, s):
    """c(z, x) at one row; fills h (tanh activations) and s = w2 * (1 - h^2); returns c."""
    oU = H * D
    ob1 = oU + H * C
    ow2 = ob1 + H
    c = phi[ow2 + H]
    for k in range(H):
        t = phi[ob1 + k]
        for j in range(D):
            t += phi[k * D + j] * z[j]
        for m in range(C):
            t += phi[oU + k * C + m] * ctx[r, m]
        hk = math.tanh(t)
        h[k] = hk
        s[k] = phi[ow2 + k] * (1.0 - hk * hk)
        c += phi[ow2 + k] * hk
    return c


@njit(cache=True)
def _cv_grad_z(phi, D, H, s, out):
    """out_j = dc/dz_j = sum_k s_k W1_kj."""
    for j in range(D):
        acc = 0.0
        for k in range(H):
            acc += s[k] * phi[k * D + j]
        out[j] = acc


@njit(cache=True)
def _acc_dc_dphi(z, ctx, r, D, C, H, h, s, coef, gphi):
    """gphi += coef * dc/dphi."""
    oU = H * D
    ob1 = oU + H * C
    ow2 = ob1 + H
    for k in range(H):
        sk = coef * s[k]
        for j in range(D):
            gphi[k * D + j] += sk * z[j]
        for m in range(C):
            gphi[oU + k * C + m] += sk * ctx[r, m]
        gphi[ob1 + k] += sk
        gphi[ow2 + k] += coef * h[k]
    gphi[ow2 + H] += coef


@njit(cache=True)
def _acc_dD_dphi(z, ctx, r, phi, D, C, H, h, q, coef, gphi):
    """gphi += coef * d/dphi [sum_j q_j dc/dz_j], with dc/dz_j = sum_k w2_k (1 - h_k^2) W1_kj."""
    oU = H * D
    ob1 = oU + H * C
    ow2 = ob1 + H
    for k in range(H):
        wq = 0.0
        for j in range(D):
            wq += phi[k * D + j] * q[j]
        hk = h[k]
        sech2 = 1.0 - hk * hk
        w2k = phi[ow2 + k]
        gphi[ow2 + k] += coef * sech2 * wq
        dt = coef * w2k * wq * (-2.0 * hk * sech2)   # d/d(pre-activation)
        for j in range(D):
            gphi[k * D + j] += coef * w2k * sech2 * q[j] + dt * z[j]
        for m in range(C):
            gphi[oU + k * C + m] += dt * ctx[r, m]
        gphi[ob1 + k] += dt


# ----- the same network with its context's part computed once per row (RELAX's paper form, whose
# context is often wide: the data row). The context enters c only through the pre-activations,
# ux_k = b1_k + sum_m U_km x_m, the same at z and z~; and every gradient in U and b1 is a
# per-unit coefficient times (x_m, 1), so the coefficients are summed first (`pre`) and spread
# over U and b1 once (_acc_context).
@njit(cache=True, fastmath=_REASSOC)
def _cv_context(ctx, r, phi, D, C, H, ux):
    """ux_k = b1_k + sum_m U_km x_m at row r."""
    oU = H * D
    ob1 = oU + H * C
    for k in range(H):
        t = phi[ob1 + k]
        for m in range(C):
            t += phi[oU + k * C + m] * ctx[r, m]
        ux[k] = t


@njit(cache=True, fastmath=_REASSOC)
def _cv_from(z, ux, phi, D, C, H, h, s):
    """_cv given the context's pre-activations ux (_cv_context)."""
    ow2 = H * D + H * C + H
    c = phi[ow2 + H]
    for k in range(H):
        t = ux[k]
        for j in range(D):
            t += phi[k * D + j] * z[j]
        hk = math.tanh(t)
        h[k] = hk
        s[k] = phi[ow2 + k] * (1.0 - hk * hk)
        c += phi[ow2 + k] * hk
    return c


@njit(cache=True, fastmath=_REASSOC)
def _acc_dc_dphi_pre(z, D, C, H, h, s, coef, gphi, pre):
    """_acc_dc_dphi but U's and b1's share: pre_k += coef * s_k (then _acc_context)."""
    ow2 = H * D + H * C + H
    for k in range(H):
        sk = coef * s[k]
        for j in range(D):
            gphi[k * D + j] += sk * z[j]
        pre[k] += sk
        gphi[ow2 + k] += coef * h[k]
    gphi[ow2 + H] += coef


@njit(cache=True, fastmath=_REASSOC)
def _acc_dD_dphi_pre(z, phi, D, C, H, h, q, coef, gphi, pre):
    """_acc_dD_dphi but U's and b1's share: pre_k += its pre-activation coefficient (then
    _acc_context)."""
    ow2 = H * D + H * C + H
    for k in range(H):
        wq = 0.0
        for j in range(D):
            wq += phi[k * D + j] * q[j]
        hk = h[k]
        sech2 = 1.0 - hk * hk
        w2k = phi[ow2 + k]
        gphi[ow2 + k] += coef * sech2 * wq
        dt = coef * w2k * wq * (-2.0 * hk * sech2)
        for j in range(D):
            gphi[k * D + j] += coef * w2k * sech2 * q[j] + dt * z[j]
        pre[k] += dt


@njit(cache=True, fastmath=_REASSOC)
def _acc_context(ctx, r, D, C, H, pre, gphi):
    """gphi's U and b1 blocks += pre_k (x_m, 1) at row r."""
    oU = H * D
    ob1 = oU + H * C
    for k in range(H):
        pk = pre[k]
        for m in range(C):
            gphi[oU + k * C + m] += pk * ctx[r, m]
        gphi[ob1 + k] += pk
