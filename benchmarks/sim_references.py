"""Exact reference derivatives of the simulation problems (`benchmarks/simulations.py`).

Each function returns the exact expectation E[f] and its derivative d E[f] / d theta of one
problem at given parameters, with a rigorous bound on what truncation leaves out:

* `sir_dp`: forward DP over the joint law of (S_t, I_t, M_t = max_{u<=t} I_u), pruned;
* `queue_dp`: the law of the queue length L_t on 0..T;
* `inventory_dp`: the law of the inventory level on 0..S (no truncation: the Poisson tail
  enters only as P(D >= y) and through E[(D - y)^+] = lam - y + E[(y - D)^+]);
* `branching_dp`: the law of Z_t on 0..z_max (the mass above z_max dropped and bounded);
* `walk_dp`: the law of the random walk X_t on 0..n + 1 (no truncation);
* `kalman_loglik`: log p(y_{1:T}) of the linear-Gaussian model and its exact derivative.

Every derivative is forward mode: the state law P_t and its derivative dP_t = d P_t / d theta
are propagated together (dP_{t+1} = sum over transitions of dP_t q + P_t dq, q the transition
probability), so d E[f] / d theta = sum f dP_T is exact up to float64 rounding and the stated
truncation. Where truncation drops a pair (delta P, delta dP) at a state x, its effect on the
final derivative is delta dP E[f | x] + delta P d E[f | x] / d theta; each function bounds
both factors (its docstring says how) and sums the bound over everything dropped. The
`tests/training/test_simulation_references.py` check each against an independent oracle.
"""
import math

import numba
import numpy as np

njit = numba.njit(cache=True)


# ----------------------------------------------------------------------------- binomial windows

@njit
def binomial_window(n, p, tau, q, score):
    """The pmf of Binomial(n, p) on the window [k0, k1] around the mode where
    pmf >= tau * pmf(mode), written into q[k0:k1 + 1], and the score d log pmf / dp into
    score[k0:k1 + 1]. Returns (k0, k1, tail, dtail): `tail` bounds the mass left out (both
    sides: the pmf is log-concave, so the ratio of neighbours is monotone and each tail is at
    most its first term over 1 - ratio) and `dtail` bounds sum |d pmf / dp| over it
    (|score| <= n / (p (1 - p)))."""
    if n == 0:
        q[0] = 1.0
        score[0] = 0.0
        return 0, 0, 0.0, 0.0
    lp = math.log(p)
    l1p = math.log1p(-p)
    mode = int(math.floor((n + 1) * p))
    if mode > n:
        mode = n
    lg_n = math.lgamma(n + 1.0)
    top = math.exp(lg_n - math.lgamma(mode + 1.0) - math.lgamma(n - mode + 1.0) + mode * lp + (n - mode) * l1p)
    odds = p / (1.0 - p)
    q[mode] = top
    k1 = mode
    v = top
    tail = 0.0
    while k1 < n:
        v = v * (n - k1) / (k1 + 1.0) * odds
        if v < tau * top:
            # v = pmf(k1 + 1); the following ratios are at most r
            r = (n - k1 - 1.0) / (k1 + 2.0) * odds
            tail += v / (1.0 - r) if r < 1.0 else v * (n - k1)
            break
        k1 += 1
        q[k1] = v
    k0 = mode
    v = top
    while k0 > 0:
        v = v * k0 / (n - k0 + 1.0) / odds
        if v < tau * top:
            r = (k0 - 1.0) / (n - k0 + 2.0) / odds
            tail += v / (1.0 - r) if r < 1.0 else v * k0
            break
        k0 -= 1
        q[k0] = v
    for k in range(k0, k1 + 1):
        score[k] = k / p - (n - k) / (1.0 - p)
    return k0, k1, tail, tail * n / (p * (1.0 - p))


# ----------------------------------------------------------------------------- SIR

@njit
def _sir_index(n_pop):
    """Offsets of the compact layout of (S, I, M): S + I <= N and I <= M <= N - S (S never
    grows, so every I_u, u <= t, is at most N - S_t)."""
    base = np.full((n_pop + 1, n_pop + 1), -1, np.int64)
    off = 0
    for s in range(n_pop + 1):
        for i in range(n_pop + 1 - s):
            base[s, i] = off
            off += n_pop - s - i + 1
    return base, off


@njit
def _sir_block(s, i, beta, N, base, P, dP, a, z, P2, dP2, lo2, hi2, qc, c0, c1, ctail, qb, sb, cum, dcum, tau_pmf):
    """Scatter the block (S = s, I = i, M = a..z) one day forward into (P2, dP2); returns the
    mass and the |derivative| of the transitions the binomial windows leave out."""
    src = base[s, i] - i
    x = beta * i / N
    p = -math.expm1(-x)
    dp = (i / N) * math.exp(-x)
    b0, b1, btail, bdtail = binomial_window(s, p, tau_pmf, qb, sb)
    # prefix sums of the block over M: every m <= i2 lands on M' = i2
    mass = 0.0
    dmass = 0.0
    dabs = 0.0
    for m in range(a, z + 1):
        mass += P[src + m]
        dmass += dP[src + m]
        dabs += abs(dP[src + m])
        cum[m] = mass
        dcum[m] = dmass
    # pairs (b, c) left out: b outside its window, or c outside its window
    bd_in = 0.0
    for b in range(b0, b1 + 1):
        bd_in += qb[b] * abs(sb[b])
    drop_P = mass * (btail + ctail[i])
    drop_dP = dabs * (btail + ctail[i]) + mass * (bdtail + bd_in * ctail[i]) * dp
    for b in range(b0, b1 + 1):
        wb = qb[b]
        dwb = qb[b] * sb[b] * dp
        s2 = s - b
        for c in range(c0[i], c1[i] + 1):
            w = wb * qc[i, c]
            dw = dwb * qc[i, c]
            i2 = i + b - c
            dst = base[s2, i2] - i2
            if i2 >= a:  # m = a..min(z, i2) collapse onto M' = i2
                j = i2 if i2 < z else z
                P2[dst + i2] += w * cum[j]
                dP2[dst + i2] += w * dcum[j] + dw * cum[j]
                first = j + 1
            else:
                first = a
            for m in range(first, z + 1):
                pm = P[src + m]
                P2[dst + m] += w * pm
                dP2[dst + m] += w * dP[src + m] + dw * pm
            lo2[s2, i2] = min(lo2[s2, i2], max(a, i2))
            hi2[s2, i2] = max(hi2[s2, i2], max(z, i2))
    return drop_P, drop_dP


@njit
def _sir_prune(N, base, P, dP, lo, hi, tau_state, tau_d):
    """Drop the ends of every block's M range where |P| < tau_state and |dP| < tau_d; returns
    the dropped mass and |derivative|."""
    drop_P = 0.0
    drop_dP = 0.0
    for s in range(N + 1):
        for i in range(N + 1 - s):
            a, z = lo[s, i], hi[s, i]
            if a > z:
                continue
            src = base[s, i] - i
            while a <= z and abs(P[src + a]) < tau_state and abs(dP[src + a]) < tau_d:
                drop_P += abs(P[src + a])
                drop_dP += abs(dP[src + a])
                P[src + a] = 0.0
                dP[src + a] = 0.0
                a += 1
            while z >= a and abs(P[src + z]) < tau_state and abs(dP[src + z]) < tau_d:
                drop_P += abs(P[src + z])
                drop_dP += abs(dP[src + z])
                P[src + z] = 0.0
                dP[src + z] = 0.0
                z -= 1
            lo[s, i] = a if a <= z else N + 1
            hi[s, i] = z if a <= z else -1
    return drop_P, drop_dP


@njit
def sir_dp(beta, gamma, n_pop, i0, T, tau_state, tau_pmf):
    """E[max_{0<=t<=T} I_t] of the chain-binomial SIR model and its derivative in beta.

    The law of (S_t, I_t, M_t) is propagated exactly except that (a) each binomial is kept on
    the window where its pmf is >= tau_pmf times its mode's (the rest bounded by
    `binomial_window`), (b) after each step the ends of each (S, I) block's M range whose
    |P| < tau_state and |dP| < 1e3 tau_state are dropped. Bound of the effect of a dropped pair:
    E[f | x] <= N, and |d E[f | x] / d beta| <= N sum_u E|score_u| <= N T sqrt(N / (4 beta))
    (the score of Binomial(S, p(beta)) has sd sqrt(S / (p (1 - p))) p' <= sqrt(S I / (N beta))
    for p = 1 - exp(-beta I / N), and S I <= N^2 / 4).

    Returns (E, dE, err_E, err_dE, dropped_P, dropped_dP)."""
    N = n_pop
    base, size = _sir_index(N)
    P = np.zeros(size)
    dP = np.zeros(size)
    P2 = np.zeros(size)
    dP2 = np.zeros(size)
    lo = np.full((N + 1, N + 1), N + 1, np.int64)   # each block's M range (empty: lo > hi)
    hi = np.full((N + 1, N + 1), -1, np.int64)
    lo2 = lo.copy()
    hi2 = hi.copy()
    s0 = N - i0
    P[base[s0, i0]] = 1.0
    lo[s0, i0] = i0
    hi[s0, i0] = i0
    # recoveries: Binomial(I, gamma), the same every day
    qc = np.zeros((N + 1, N + 1))
    c0 = np.zeros(N + 1, np.int64)
    c1 = np.zeros(N + 1, np.int64)
    ctail = np.zeros(N + 1)
    sc = np.zeros(N + 1)
    for i in range(N + 1):
        k0, k1, tl, _ = binomial_window(i, gamma, tau_pmf, qc[i], sc)
        c0[i] = k0
        c1[i] = k1
        ctail[i] = tl
    qb = np.zeros(N + 1)
    sb = np.zeros(N + 1)
    cum = np.zeros(N + 1)
    dcum = np.zeros(N + 1)
    dropped_P = 0.0
    dropped_dP = 0.0
    for t in range(T):
        for s in range(N + 1):
            for i in range(N + 1 - s):
                a, z = lo[s, i], hi[s, i]
                if a > z:
                    continue
                src = base[s, i] - i
                if i == 0:  # no one infected: the state stays
                    for m in range(a, z + 1):
                        P2[src + m] += P[src + m]
                        dP2[src + m] += dP[src + m]
                    lo2[s, i] = min(lo2[s, i], a)
                    hi2[s, i] = max(hi2[s, i], z)
                else:
                    dp_, ddp_ = _sir_block(s, i, beta, N, base, P, dP, a, z, P2, dP2, lo2, hi2,
                                           qc, c0, c1, ctail, qb, sb, cum, dcum, tau_pmf)
                    dropped_P += dp_
                    dropped_dP += ddp_
                for m in range(a, z + 1):   # clear the old law as it is read
                    P[src + m] = 0.0
                    dP[src + m] = 0.0
                lo[s, i] = N + 1
                hi[s, i] = -1
        dp_, ddp_ = _sir_prune(N, base, P2, dP2, lo2, hi2, tau_state, 1e3 * tau_state)
        dropped_P += dp_
        dropped_dP += ddp_
        P, P2 = P2, P
        dP, dP2 = dP2, dP
        lo, lo2 = lo2, lo
        hi, hi2 = hi2, hi
    E = 0.0
    dE = 0.0
    for s in range(N + 1):
        for i in range(N + 1 - s):
            src = base[s, i] - i
            for m in range(lo[s, i], hi[s, i] + 1):
                E += m * P[src + m]
                dE += m * dP[src + m]
    err_E = N * dropped_P
    err_dE = N * dropped_dP + N * T * math.sqrt(N / (4.0 * beta)) * dropped_P
    return E, dE, err_E, err_dE, dropped_P, dropped_dP


# ----------------------------------------------------------------------------- queue

@njit
def queue_dp(a, s, T, L0):
    """E[(1/T) sum_{t=1..T} L_t] of L_{t+1} = max(L_t + A_t - D_t, 0), A ~ Bernoulli(a),
    D ~ Bernoulli(s), and its derivative in s. Exact: L_t lies in 0..L0 + T.
    Returns (E, dE)."""
    n = L0 + T + 2
    P = np.zeros(n)
    dP = np.zeros(n)
    P2 = np.zeros(n)
    dP2 = np.zeros(n)
    P[L0] = 1.0
    up, dup = a * (1.0 - s), -a            # L + 1
    down, ddown = (1.0 - a) * s, 1.0 - a   # L - 1 (or stays at 0)
    stay, dstay = 1.0 - up - down, a - (1.0 - a)
    E = 0.0
    dE = 0.0
    for t in range(T):
        P2[:] = 0.0
        dP2[:] = 0.0
        for k in range(n - 1):
            pk = P[k]
            dk = dP[k]
            if pk == 0.0 and dk == 0.0:
                continue
            P2[k + 1] += up * pk
            dP2[k + 1] += up * dk + dup * pk
            P2[k] += stay * pk
            dP2[k] += stay * dk + dstay * pk
            j = k - 1 if k > 0 else 0
            P2[j] += down * pk
            dP2[j] += down * dk + ddown * pk
        P, P2 = P2, P
        dP, dP2 = dP2, dP
        for k in range(n):
            E += k * P[k]
            dE += k * dP[k]
    return E / T, dE / T


# ----------------------------------------------------------------------------- inventory

@njit
def inventory_dp(lam, S, s, K, c, h, p, T, I0):
    """E[(1/T) sum_t cost_t] of the lost-sales (s, S) inventory (see `simulations.inventory_cost`)
    and its derivative in the Poisson rate lam. Exact: the level lies in 0..S; the demand's tail
    enters only through P(D >= y) = 1 - F(y - 1) (the mass sent to level 0) and
    E[(D - y)^+] = lam - y + E[(y - D)^+]. Returns (E, dE)."""
    n = S + 1
    pmf = np.zeros(n + 1)
    dpmf = np.zeros(n + 1)
    v = math.exp(-lam)
    for k in range(n + 1):
        pmf[k] = v
        dpmf[k] = v * (k / lam - 1.0)
        v = v * lam / (k + 1.0)
    # per level: expected cost and the transition to y - D (y the level after ordering)
    cost = np.zeros(n)
    dcost = np.zeros(n)
    for lev in range(n):
        order = lev <= s
        y = S if order else lev
        short = 0.0   # E[(y - D)^+]
        dshort = 0.0
        for k in range(y):
            short += (y - k) * pmf[k]
            dshort += (y - k) * dpmf[k]
        cost[lev] = (K + c * (S - lev) if order else 0.0) + h * short + p * (lam - y + short)
        dcost[lev] = h * dshort + p * (1.0 + dshort)
    P = np.zeros(n)
    dP = np.zeros(n)
    P2 = np.zeros(n)
    dP2 = np.zeros(n)
    P[I0] = 1.0
    E = 0.0
    dE = 0.0
    for t in range(T):
        for lev in range(n):
            E += P[lev] * cost[lev]
            dE += dP[lev] * cost[lev] + P[lev] * dcost[lev]
        P2[:] = 0.0
        dP2[:] = 0.0
        for lev in range(n):
            pl = P[lev]
            dl = dP[lev]
            y = S if lev <= s else lev
            F = 0.0
            dF = 0.0
            for k in range(y):
                P2[y - k] += pl * pmf[k]
                dP2[y - k] += dl * pmf[k] + pl * dpmf[k]
                F += pmf[k]
                dF += dpmf[k]
            P2[0] += pl * (1.0 - F)
            dP2[0] += dl * (1.0 - F) - pl * dF
        P, P2 = P2, P
        dP, dP2 = dP2, dP
    return E / T, dE / T


# ----------------------------------------------------------------------------- branching

@njit
def branching_dp(R, Kc, z0, T, z_max):
    """E[Z_T] of Z_{t+1} ~ Poisson(Z_t R / (1 + Z_t / Kc)) and its derivative in R, on 0..z_max.

    The rate is below R Kc at every Z, so E[Z_T | Z_t = z] <= max(z, R Kc) (z itself if t = T)
    and, by Cauchy-Schwarz with the score sum_u (Z_{u+1} - lam_u) / R (variance <= T Kc / R),
    |d E[Z_T | Z_t = z] / d R| <= sqrt(R Kc + (R Kc)^2) sqrt(T Kc / R) for t < T. The mass
    each step sends above z_max is dropped; the bound of its effect is summed over every
    dropped state (up to where the Poisson pmf underflows).
    Returns (E, dE, err_E, err_dE, dropped_P)."""
    n = z_max + 1
    RK = R * Kc
    grad_bound = math.sqrt(RK + RK * RK) * math.sqrt(T * Kc / R)
    P = np.zeros(n)
    dP = np.zeros(n)
    P2 = np.zeros(n)
    dP2 = np.zeros(n)
    P[z0] = 1.0
    err_E = 0.0
    err_dE = 0.0
    dropped_P = 0.0
    for t in range(T):
        P2[:] = 0.0
        dP2[:] = 0.0
        last = t == T - 1
        for z in range(n):
            pz = P[z]
            dz = dP[z]
            if pz == 0.0 and dz == 0.0:
                continue
            if z == 0:  # rate 0: the certain 0
                P2[0] += pz
                dP2[0] += dz
                continue
            lam = R * z / (1.0 + z / Kc)
            dlam = lam / R
            v = math.exp(-lam)
            k = 0
            while True:
                dv = v * (k / lam - 1.0) * dlam
                if k < n:
                    P2[k] += pz * v
                    dP2[k] += dz * v + pz * dv
                else:
                    if v == 0.0 and k > lam:
                        break
                    mP = pz * v
                    mdP = abs(dz) * v + abs(pz * dv)
                    dropped_P += mP
                    err_E += mP * (k if last else max(k, RK))
                    err_dE += mdP * (k if last else max(k, RK)) + (0.0 if last else mP * grad_bound)
                v = v * lam / (k + 1.0)
                k += 1
        P, P2 = P2, P
        dP, dP2 = dP2, dP
    E = 0.0
    dE = 0.0
    for z in range(n):
        E += z * P[z]
        dE += z * dP[z]
    return E, dE, err_E, err_dE, dropped_P


# ----------------------------------------------------------------------------- random walk

@njit
def walk_dp(p, n):
    """E[X_n^2] of X_0 = 0, X_{t+1} = X_t + 1 with probability q(X_t) = exp(-X_t / p), else
    X_t - 1 (q(0) = 1: never below 0), and its derivative in p (dq / dp = q X / p^2). Exact:
    X_t lies in 0..t, the law carried on 0..n + 1 (the transition matrix, one step at a time).
    Returns (E, dE)."""
    m = n + 2
    P = np.zeros(m)
    dP = np.zeros(m)
    P2 = np.zeros(m)
    dP2 = np.zeros(m)
    P[0] = 1.0
    for t in range(n):
        P2[:] = 0.0
        dP2[:] = 0.0
        for k in range(t + 1):
            pk = P[k]
            dk = dP[k]
            if pk == 0.0 and dk == 0.0:
                continue
            q = math.exp(-k / p)
            dq = q * k / (p * p)
            P2[k + 1] += q * pk
            dP2[k + 1] += q * dk + dq * pk
            if k > 0:
                P2[k - 1] += (1.0 - q) * pk
                dP2[k - 1] += (1.0 - q) * dk - dq * pk
        P, P2 = P2, P
        dP, dP2 = dP2, dP
    E = 0.0
    dE = 0.0
    for k in range(m):
        E += k * k * P[k]
        dE += k * k * dP[k]
    return E, dE


# ----------------------------------------------------------------------------- Kalman filter

def kalman_loglik(theta, A0, Q, C, r, m0, P0, y, dtype=float):
    """log p(y_{1:T}) of x_t = theta A0 x_{t-1} + w_t, w ~ N(0, Q), y_t = C x_t + v_t,
    v ~ N(0, r) (scalar y), x_0 ~ N(m0, P0); plain NumPy, so a complex theta gives the
    complex-step derivative. Returns log p."""
    A = theta * np.asarray(A0, dtype=dtype)
    m = np.asarray(m0, dtype=dtype).copy()
    P = np.asarray(P0, dtype=dtype).copy()
    C = np.asarray(C, dtype=float)
    ll = 0.0
    for yt in y:
        m = A @ m
        P = A @ P @ A.T + Q
        S = C @ P @ C + r
        e = yt - C @ m
        ll = ll - 0.5 * (np.log(2 * np.pi * S) + e * e / S)
        Kg = P @ C / S
        m = m + Kg * e
        P = P - np.outer(Kg, Kg) * S
    return ll


def kalman_loglik_grad(theta, A0, Q, C, r, m0, P0, y):
    """log p(y_{1:T}) and its exact derivative in theta, by the tangent (forward-mode)
    recursion of the Kalman filter: dA = A0, dm, dP propagated beside m, P."""
    A0 = np.asarray(A0, float)
    A = theta * A0
    dA = A0
    C = np.asarray(C, float)
    m = np.asarray(m0, float).copy()
    P = np.asarray(P0, float).copy()
    dm = np.zeros_like(m)
    dP = np.zeros_like(P)
    ll = 0.0
    dll = 0.0
    for yt in y:
        m, dm = A @ m, dA @ m + A @ dm
        P, dP = A @ P @ A.T + Q, dA @ P @ A.T + A @ dP @ A.T + A @ P @ dA.T
        S = C @ P @ C + r
        dS = C @ dP @ C
        e = yt - C @ m
        de = -(C @ dm)
        ll -= 0.5 * (np.log(2 * np.pi * S) + e * e / S)
        dll -= 0.5 * (dS / S + 2 * e * de / S - e * e * dS / (S * S))
        Kg = P @ C / S
        dK = (dP @ C - Kg * dS) / S
        m, dm = m + Kg * e, dm + dK * e + Kg * de
        P, dP = (P - np.outer(Kg, Kg) * S,
                 dP - np.outer(dK, Kg) * S - np.outer(Kg, dK) * S - np.outer(Kg, Kg) * dS)
    return ll, dll
