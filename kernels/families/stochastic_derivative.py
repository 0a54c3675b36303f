"""Stochastic derivatives with pruning (Arya, Schauer, Schaefer & Rackauckas 2022, "Automatic
differentiation of programs with discrete randomness", NeurIPS): the kernels of
estimators/stochastic_derivative.py.

A discrete draw x(theta) by inverse CDF from one uniform jumps, as theta grows, to an alternative
value y with a probability proportional to d theta: its derivative is E[w (f(y) - f(x))], w the
jump's weight per unit of theta. Per unit of a node, in its law's parameter:
  Bernoulli (logits a), p = sigmoid(a):  x = 0 -> y = 1, w = p               (x = 1: no jump)
  Categorical (logits a, a group):       x = c -> y = k for each class k != c, w_k = p_k
  Poisson (rate):                        x -> x + 1, w = 1
  Bernoulli (probs p):                   x = 0 -> y = 1, w = 1 / (1 - p)
  Categorical (probs: weights w, sum S): x = c -> y = k for each class k != c, w_k = 1 / S
  Binomial (total_count n, probs p):     x -> x + 1 (x < n), w = (n - x) / (1 - p); logits: (n - x) p
  Geometric (probs p, failures):         x -> x - 1 (x > 0), w = x / (p (1 - p)); logits: x
Pruning keeps ONE alternative per drawn row among every jump of every node drawn so far: a
weighted reservoir (the jump of weight |w| replaces the kept one with probability |w| / W, W the
running sum of the weights), so the kept jump is j with probability |w_j| / W_total, and
W_total sign(w_j) (f(y_j) - f(x)) estimates the derivative along j's parameter without bias.

Paths: A = W.shape[1] reservoirs, each with an alternative row of its own (one per parameter
direction where the jumps are weighed along a few: ppl/lowering/tangents.py); path a weighs the
directions d with d % A == a, and every buffer below has a column (block) per path.

Noise: the draw's noise u (the unit's value, on every row) and the reservoirs' uniforms v (drawn
rows only), v's last A width columns (path a's: block a): the laws drawn from one uniform take
both from ONE buffer of (1 + A) width columns (u the first block), one philox block giving a
scalar unit's uniforms.

Rows: the drawn row (local index 0 of the digit (stride, span)) holds the draw x; path a's
alternative row (local index `off` + a) holds the path that took its kept jump: when a node's
jump is kept, the alternative row takes the drawn row's values with that jump applied (the
lowering copies the drawn row's values read later onto it, `alt_reset`), else it draws the node
plainly from its own inputs with the drawn row's uniform (common random numbers). Every other row
of the digit draws plainly. Per drawn row and path (R x A buffers): W the weights' running sum,
`sid` the count of kept jumps (the kept one's tag), D the alternative's cost minus the draw's,
summed as the costs are computed (`alt_cost_diff`) and restarted at each kept jump; `tag[r, a
width + j]` holds the count at which path a kept unit j's jump (the estimate: its unit's tag
equals the path's final count). The alternative rows weigh 0 in the objective. A unit of an
alternative row whose parameters and uniform equal the drawn row's takes the drawn value.

Score (`sc` has rows, along the parameters): on a drawn row (only), sc[r, d] = sum_j s_j tan_d,j, s_j the
law's score d log p(x_j) / d q_j of the unit's draw: the derivative along direction d of the
draw's log-likelihood, zero-mean, the control variate of sd_control.py.

Learned importance (ppl/lowering/tangents.py; `hoff` >= 0, the node's cell in `state`): along
the parameters, a jump's weight is also multiplied by its cell's importance in use, and its
weight under the other weighing is summed in learn[r, paths + a]; the kept jump's cell goes to
learn[r, a], and where its estimate is final (sd_bank, sd_learn_final) its D^2 and the estimates of
the square of its estimate under both weighings join the cell's sums, from which
`sd_importance` makes the next step's importance.
"""
import math
import textwrap

import numpy as np
from numba import njit

from ..declare import rows
from ..math.groups import categorical_sample_group, logsumexp_group
from ..math.scalar import like, sigmoid
from ..math.slots import slot_local
from ..math.words import add_word
from .binomial import _pq, _sample as _binomial_sample
from .geometric import _sample as _geometric_sample
from .poisson import _inverse_cdf
from .probs import _group_sum, _icdf_group
from .sd_control import (_bernoulli_probs_score, _bernoulli_score, _binomial_score, _geometric_score,
                         _poisson_score)
from .sd_importance import _importance, _kept_terms, learn_case


@njit(cache=True, error_model="numpy", inline="always")
def _keep(r, a, j, m, v, W, sid, tag):
    """A jump of weight m > 0 of unit j into path a's reservoir (its uniforms: v's last paths x
    width columns, path by path): True when it replaces the kept one."""
    n, A = tag.shape[1] // W.shape[1], W.shape[1]
    W[r, a] += m
    if v[r, v.shape[1] - (A - a) * n + j] * W[r, a] < m:
        sid[r, a] += 1.0
        tag[r, a * n + j] = sid[r, a]
        return True
    return False


@njit(cache=True, error_model="numpy", inline="always")
def _keep_t(r, a, j, w, v, W, sid, tag, tan, S, state, hoff, learn):
    """A jump of unit j, weight w > 0 per unit of its law's parameter, into path a's reservoir:
    per unit (`tan` empty: weight w), or along the model's parameters (`tan`: the parameter's
    tangents, column d * width + j for direction d): weight m = w sum |tan_d| over the path's
    directions (d % paths == a), times the importance in use (hoff >= 0: _importance), and where
    it is kept S[r, a * dirs + d] = w tan_d / m there (0 elsewhere), so that W_total S (f(y) -
    f(x)) estimates each of them. A jump with no tangent adds nothing; a NaN weight makes W NaN."""
    if tan.shape[0] == 0:
        return _keep(r, a, j, w, v, W, sid, tag)
    n, A = tag.shape[1] // W.shape[1], W.shape[1]
    ND = S.shape[1] // A
    m = 0.0
    for d in range(a, ND, A):
        m += abs(float(tan[r, d * n + j]))
    m *= w
    if hoff >= 0:
        hu, ho = _importance(state[hoff + a], state[hoff + A + a])
        learn[r, A + a] += m * ho
        m *= hu
    if m == 0.0 or not _keep(r, a, j, m, v, W, sid, tag):
        return False
    for d in range(ND):
        S[r, a * ND + d] = w * float(tan[r, d * n + j]) / m if d % A == a else 0.0
    if hoff >= 0:
        learn[r, a] = hoff
    return True


@njit(cache=True, error_model="numpy")
def _apply(r, a, ra, kept, jump, D, switched, value, rw):
    """Path a's alternative row ra after the drawn row's jumps: the draw with the kept jump (to
    `jump`) where this node kept one (and D restarts), else left to the caller's plain draw (False)."""
    switched[r, a] = 1.0 if kept >= 0 else 0.0
    rw[ra] = 0.0
    if kept < 0:
        return False
    D[r, a] = 0.0
    for j in range(value.shape[1]):
        value[ra, j] = value[r, j]
    value[ra, kept] = jump
    return True


@njit(cache=True, error_model="numpy")
def _move_group(value, ra, kept, K):
    """The alternative row's one-hot group of the kept class moved to it (the rest of the row is
    the draw's, copied by _apply)."""
    g0 = (kept // K) * K
    for k in range(K):
        value[ra, g0 + k] = like(value, 1.0) if g0 + k == kept else like(value, 0.0)


# ---- the laws of one unit per column, their kernels made from one template (below): a row's
# work is pasted into the kernel's loop (kernels/declare.py) and calls only scalar helpers, so no
# array is reference-counted per row
@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_unit(logits, u):
    return 1.0 if u < sigmoid(logits) else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_jump(logits, x):
    # the jumps' weights by arithmetic on the draw, not a test of it: a branch on the draw mispredicts,
    # and LLVM makes a select of a division's result a branch. A unit x of {0, 1}: 1 - x jumps (a NaN
    # parameter draws 0, so its weight stays NaN)
    z = 1.0 - x
    return z * float(sigmoid(logits)), z


@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_probs_unit(probs, u):
    return 1.0 if u < probs else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_probs_jump(probs, x):   # 1 / (1 - p) at x = 0 as -1 / (p - 1), no test of x: the quotient
    z = 1.0 - x                         # of sd_control._bernoulli_probs_score, x = 1 weighing 0
    return -z * (1.0 / (float(probs) - z)), z


@njit(cache=True, error_model="numpy", inline="always")
def _poisson_jump(rate, x):
    return 1.0, 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _binomial_unit(n, param, u, logits):
    return _binomial_sample(n, param, u, logits)


@njit(cache=True, error_model="numpy", inline="always")
def _binomial_jump(n, param, x, logits):
    p, q, lp, lq = _pq(param, logits)
    z = (x < float(n)) & (q > 0.0)
    w = (float(n) - x) * (p if logits else 1.0 / (q if q > 0.0 else 1.0))   # q = 0 draws n: no jump
    return (w if z else 0.0), (1.0 if z else 0.0)


@njit(cache=True, error_model="numpy", inline="always")
def _geometric_jump(param, x, logits):
    p, q, lp, lq = _pq(param, logits)
    z, pq = x > 0.0, p * q
    w = x if logits else x / (pq if pq > 0.0 else 1.0)   # p = 1 draws 0: no jump
    return (w if z else 0.0), (-1.0 if z else 0.0)


_TEMPLATE = """def {name}(r, {params}, u, v, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S, state, hoff,
        learn, sc):
    jl = slot_local(r, stride, span)
{body}
"""
# the body of _TEMPLATE: {N} the units (value's columns), {A} the paths (W's), {ND} the directions
# (S's columns / A). Each law has two kernels: `sd_<kind>_draw` and `sd_<kind>_draw1`, a copy for
# one unit, one path and at most one direction with them constant, so that its loops leave no
# vector-loop set-up in each row's work (the lowering picks it: one kernel holding both copies
# behind a test of the shapes ran its rows at the general copy's speed). Path a's reservoir reads v's columns vo + a N + j and weighs the directions
# d % A == a (tangents.py); its alternative row is local index off + a.
_BODY = """if jl < off or jl >= off + {A}:
    for j in range({N}):
        value[r, j] = like(value, {unit_r})
    if jl == 0:
        n_, A_ = {N}, {A}
        vo = v.shape[1] - A_ * n_   # the reservoirs' uniforms: v's last A n columns (v may be u's twin)
        if sc.shape[0] != 0:   # the draw's score along each direction (the control variate: sd_control.py)
            for d in range({ND}):
                sc[r, d] = 0.0
            for j in range(n_):
                sj = {score_r}
                for d in range({ND}):
                    sc[r, d] += sj * float(tan[r, d * n_ + j])
        for a in range(A_):   # what depends on the draw is selected, not branched on (random branches mispredict)
            ra = r + (off + a) * stride
            kept, jump = -1, 0.0
            for j in range(n_):
                w, dy = {jump_r}
                jumps = not w <= 0.0   # a jump (a NaN weight too: it makes W NaN)
                m = w
                if tan.shape[0] != 0:   # along the path's directions: w sum_d |tan_d|
                    m = 0.0
                    for d in range(a, {ND}, A_):
                        m += abs(float(tan[r, d * n_ + j]))
                    m *= w
                    if hoff >= 0:   # the learned importance of the node's step and path (_importance)
                        hu, ho = _importance(state[hoff + a], state[hoff + A_ + a])
                        learn[r, A_ + a] += m * ho if jumps else 0.0
                        m *= hu
                m = m if jumps else 0.0
                W[r, a] += m
                # v W < m, the reciprocal read by the test on every jump: LLVM cannot move its division
                # under a branch on the draw; m + 1 where m is 0 (no division by 0); not where m is 0 or NaN
                im = 1.0 / (m + (m == 0.0))
                keep = (v[r, vo + a * n_ + j] * W[r, a] * im < 1.0) & (m > 0.0)
                # (each select between values loaded before it: a select that loads in one arm stays a branch)
                count = sid[r, a] + (1.0 if keep else 0.0)
                sid[r, a] = count
                tag[r, a * n_ + j] = count if keep else 0.0
                kept = j if keep else kept
                jump = dy if keep else jump
                if tan.shape[0] != 0:
                    wm = w * im
                    for d in range({ND}):
                        sd = wm * float(tan[r, d * n_ + j]) if d % A_ == a else 0.0
                        s0 = S[r, a * {ND} + d]
                        S[r, a * {ND} + d] = sd if keep else s0
                    if hoff >= 0:
                        l0 = learn[r, a]
                        learn[r, a] = hoff if keep else l0
            moved = kept >= 0
            switched[r, a] = 1.0 if moved else 0.0
            rw[ra] = 0.0
            d0 = D[r, a]
            D[r, a] = 0.0 if moved else d0
            for j in range(n_):   # the draw with the kept jump, else the plain draw: a unit whose parameters
                xr = value[r, j]   # and uniform are the drawn row's takes the drawn value
                x = xr + like(value, jump) if j == kept else xr
{alt}"""
# the alternative row's unit j (x: the drawn row's, with the kept jump): a law whose unit's draw is a
# compare computes it and selects; a draw that searches is made only where it is used
_ALT_SELECT = """                y = like(value, {unit_ra})
                value[ra, j] = x if moved | {same} else y"""
_ALT_BRANCH = """                if moved or {same}:
                    value[ra, j] = x
                else:
                    value[ra, j] = like(value, {unit_ra})"""
# kind: (its parameters, the unit's draw, its jump: (weight per unit of the law's parameter, step), the
# jump's words, its score: d log p(x) / d q)
_LAWS = {
    "bernoulli": ("logits", "_bernoulli_unit(logits[{i}, j], u[{i}, j])", "_bernoulli_jump(logits[r, j], float(value[r, j]))",
                  "0 -> 1, weight p per logit", "_bernoulli_score(logits[r, j], float(value[r, j]))"),
    "bernoulli_probs": ("probs", "_bernoulli_probs_unit(probs[{i}, j], u[{i}, j])",
                        "_bernoulli_probs_jump(probs[r, j], float(value[r, j]))", "0 -> 1, weight 1 / (1 - p)",
                        "_bernoulli_probs_score(probs[r, j], float(value[r, j]))"),
    "poisson": ("rate", "_inverse_cdf(rate[{i}, j], u[{i}, j])", "_poisson_jump(rate[r, j], float(value[r, j]))",
                "x -> x + 1, weight 1", "_poisson_score(rate[r, j], float(value[r, j]))"),
    "binomial": ("total_count, probs", "_binomial_unit(total_count[{i}, j], probs[{i}, j], u[{i}, j], False)",
                 "_binomial_jump(total_count[r, j], probs[r, j], float(value[r, j]), False)",
                 "x -> x + 1 (x < n), weight (n - x) / (1 - p)",
                 "_binomial_score(total_count[r, j], probs[r, j], float(value[r, j]), False)"),
    "binomial_logits": ("total_count, logits", "_binomial_unit(total_count[{i}, j], logits[{i}, j], u[{i}, j], True)",
                        "_binomial_jump(total_count[r, j], logits[r, j], float(value[r, j]), True)",
                        "x -> x + 1 (x < n), weight (n - x) p per logit",
                        "_binomial_score(total_count[r, j], logits[r, j], float(value[r, j]), True)"),
    "geometric": ("probs", "_geometric_sample(probs[{i}, j], u[{i}, j], False)",
                  "_geometric_jump(probs[r, j], float(value[r, j]), False)", "x -> x - 1 (x > 0), weight x / (p (1 - p))",
                  "_geometric_score(probs[r, j], float(value[r, j]), False)"),
    "geometric_logits": ("logits", "_geometric_sample(logits[{i}, j], u[{i}, j], True)",
                         "_geometric_jump(logits[r, j], float(value[r, j]), True)", "x -> x - 1 (x > 0), weight x per logit",
                         "_geometric_score(logits[r, j], float(value[r, j]), True)"),
}


def _scalar_law_kernels():
    """The declared kernels of the laws of one unit per column, from _TEMPLATE (as declare.unary
    makes an op's): the draw on the drawn row with its jumps in the reservoir (per unit, `tan`
    empty, or along the parameters) and the alternative row; every other row a plain draw."""
    import sys
    frame = sys._getframe(0)
    out = {}
    for kind, (params, unit, jump, doc, score) in _LAWS.items():
        for suffix, N, A, ND in (("", "value.shape[1]", "W.shape[1]", "(S.shape[1] // W.shape[1])"),
                                 ("1", "1", "1", "1")):
            name = f"sd_{kind}_draw{suffix}"
            same = " & ".join(f"({x}[ra, j] == {x}[r, j])" for x in (*params.split(", "), "u"))
            alt = (_ALT_SELECT if kind.startswith("bernoulli") else _ALT_BRANCH).format(
                unit_ra=unit.format(i="ra"), same=same)
            body = _BODY.format(N=N, A=A, ND=ND, unit_r=unit.format(i="r"), jump_r=jump, score_r=score, alt=alt)
            src = _TEMPLATE.format(name=name, params=params, body=textwrap.indent(body, " " * 4))
            glb = dict(globals())
            exec(compile("\n" * (frame.f_code.co_firstlineno - 1) + src, frame.f_code.co_filename, "exec"), glb)
            fn = glb[name]
            fn.__source__ = src
            fn.__doc__ = (f"{kind}: {doc} (the module's docstring)"
                          + ("; one unit, one path, at most one direction." if suffix else "."))
            out[name] = rows("value")(fn)
    return out


globals().update(_scalar_law_kernels())


@njit(cache=True, error_model="numpy")
def _categorical(r, logits, gumbel, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S, state, hoff,
                 learn, sc):
    jl, A, n = slot_local(r, stride, span), W.shape[1], value.shape[1]
    if off <= jl < off + A:
        return
    for c0 in range(0, n, K):
        categorical_sample_group(logits, gumbel, r, c0, K, value)
    if jl != 0:
        return
    if sc.shape[0] != 0:   # the draw's score along each direction: d log p / d a_k = [x = k] - p_k
        ND = S.shape[1] // A
        for d in range(ND):
            sc[r, d] = 0.0
        for c0 in range(0, n, K):
            m0, lse = logsumexp_group(logits, r, c0, K)
            for k in range(K):
                sj = float(value[r, c0 + k]) - math.exp(logits[r, c0 + k] - m0 - lse)
                for d in range(ND):
                    sc[r, d] += sj * float(tan[r, d * n + c0 + k])
    for a in range(A):
        ra = r + (off + a) * stride
        kept = -1
        for c0 in range(0, n, K):
            m0, lse = logsumexp_group(logits, r, c0, K)
            for k in range(K):
                tag[r, a * n + c0 + k] = 0.0
                if value[r, c0 + k] < 0.5 and _keep_t(r, a, c0 + k, math.exp(logits[r, c0 + k] - m0 - lse), v, W, sid,
                                                      tag, tan, S, state, hoff, learn):
                    kept = c0 + k
        if _apply(r, a, ra, kept, like(value, 1.0), D, switched, value, rw):
            _move_group(value, ra, kept, K)
        else:
            for c0 in range(0, n, K):
                categorical_sample_group(logits, gumbel, ra, c0, K, value)


@rows("value")
def sd_categorical_draw(r, logits, gumbel, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S,
                        state, hoff, learn, sc):
    """Groups of K classes (Gumbel-max draws): a group drawn c jumps to each other class k with
    weight p_k (per unit, or along the parameters: _keep_t)."""
    _categorical(r, logits, gumbel, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S, state, hoff,
                 learn, sc)


@njit(cache=True, error_model="numpy")
def _categorical_probs(r, probs, u, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S, state,
                       hoff, learn, sc):
    jl, A, n = slot_local(r, stride, span), W.shape[1], value.shape[1]
    if off <= jl < off + A:
        return
    for c0 in range(0, n, K):
        _icdf_group(probs, u[r, c0], r, c0, K, value)
    if jl != 0:
        return
    if sc.shape[0] != 0:   # the draw's score along each direction: d log p / d w_k = [x = k] / w_k - 1 / S
        ND = S.shape[1] // A
        for d in range(ND):
            sc[r, d] = 0.0
        for c0 in range(0, n, K):
            tot = float(_group_sum(probs, r, c0, K))
            for k in range(K):
                sj = (1.0 / float(probs[r, c0 + k]) if value[r, c0 + k] > 0.5 else 0.0) - 1.0 / tot
                for d in range(ND):
                    sc[r, d] += sj * float(tan[r, d * n + c0 + k])
    for a in range(A):
        ra = r + (off + a) * stride
        kept = -1
        for c0 in range(0, n, K):
            m = 1.0 / float(_group_sum(probs, r, c0, K))
            for k in range(K):
                tag[r, a * n + c0 + k] = 0.0
                if value[r, c0 + k] < 0.5 and _keep_t(r, a, c0 + k, m, v, W, sid, tag, tan, S, state, hoff,
                                                      learn):
                    kept = c0 + k
        if _apply(r, a, ra, kept, like(value, 1.0), D, switched, value, rw):
            _move_group(value, ra, kept, K)
        else:
            for c0 in range(0, n, K):
                _icdf_group(probs, u[ra, c0], ra, c0, K, value)


@rows("value")
def sd_categorical_probs_draw(r, probs, u, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S,
                              state, hoff, learn, sc):
    """sd_categorical_draw for weights: inverse-CDF draws; a group drawn c jumps to each other
    class k with weight 1 / S (S the group's sum)."""
    _categorical_probs(r, probs, u, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S, state,
                       hoff, learn, sc)


@rows("t")
def tangent_seed(r, t, tan_e):
    """A parameter's tangent along its entry `tan_e`: t[r, j] = 1 where j == tan_e, else 0 (int64:
    kernels/_link.PLAIN_PARAMS)."""
    for j in range(t.shape[1]):
        t[r, j] = like(t, 1.0) if j == tan_e else like(t, 0.0)


# The kernels below work path by path; one path (the common case) has a copy of its own, with
# a = 0 constant. A row's work calls no helper taking an array (Numba's inlining keeps a
# reference count per array argument per row: kernels/declare.py).
@rows("flag")
def alt_differs(r, x, flag, stride, off, span):
    """flag[r, a] = 1 on a drawn row whose path a's alternative row's values of x differ from its
    own (NaN differs): a carry at the end of a step."""
    if slot_local(r, stride, span) == 0:
        for a in range(flag.shape[1]):   # stores on every row: selects, not branches on the draw
            f, ra = flag[r, a], r + (off + a) * stride
            for j in range(x.shape[1]):
                f = f if x[ra, j] == x[r, j] else 1.0
            flag[r, a] = f


@rows("flag")
def sd_bank(r, flag, stride, span, W, D, S, acc, learn, state):
    """Where path a's alternative has met the drawn path again (flag[r, a] 0 after every carry's
    alt_differs), its contribution W D S is final: banked into acc, and its reservoir restarts
    empty (W = D = 0), so a later jump is weighed against the jumps after the meeting only. With
    the learned importance (`learn` has rows: learn[r, a] the kept jump's cell, learn[r, paths + a] the
    other weighing's sum), the kept jump's D^2, a count and _moments join its cell's sums (a D
    that is not finite adds nothing)."""
    if slot_local(r, stride, span) == 0:
        ND, A = acc.shape[1], W.shape[1]
        for a in range(A):   # stores on every row: selects, not branches on the draw
            w, d = W[r, a], D[r, a]
            bank = (flag[r, a] == 0.0) & (w != 0.0)   # one branch on the draw, not two
            c = w * d
            if bank and learn.shape[0] != 0:   # the kept jump joins its cell's sums (sd_importance.py)
                k = int(learn[r, a])
                t2, t3, t4, t5 = _kept_terms(state[k + a], state[k + A + a], w, learn[r, A + a], d * d)
                add_word(state, k + 2 * A + a, t2)
                add_word(state, k + 3 * A + a, t3)
                add_word(state, k + 4 * A + a, t4)
                add_word(state, k + 5 * A + a, t5)
                learn[r, A + a] = 0.0
            for e in range(ND):   # selects between loaded values (one loading in an arm is a branch)
                ae, se = acc[r, e], S[r, a * ND + e]
                acc[r, e] = ae + c * se if bank else ae
                S[r, a * ND + e] = 0.0 if bank else se
            W[r, a] = 0.0 if bank else w
            D[r, a] = 0.0 if bank else d


@rows("W")
def sd_tangent_grad(r, W, D, S, acc, rw, stride, span, tan_d, tan_e, gp):
    """gp[tan_e] += the drawn rows' rw (acc + sum_a W D S) in direction tan_d: the stochastic
    derivative along the parameter entry tan_e (a word every row adds to). Both are addresses,
    compiled as int64 (kernels/_link.PLAIN_PARAMS): one specialisation for every direction."""
    if slot_local(r, stride, span) == 0:
        ND = acc.shape[1]
        t = acc[r, tan_d]
        for a in range(W.shape[1]):
            t += W[r, a] * D[r, a] * S[r, a * ND + tan_d]
        add_word(gp, tan_e, rw[r] * t)


@rows("tag")
def sd_grad(r, tag, stride, span, W, sid, D, rw, grad):
    """grad[r, j] += rw W D on the drawn row of the unit whose jump path a kept last (its tag is
    the path's final count): W_total sign(w) (f(y) - f(x)), every jump's weight positive in its
    parameter."""
    if slot_local(r, stride, span) == 0:
        n = grad.shape[1]
        for a in range(W.shape[1]):
            if sid[r, a] > 0.0:
                s = like(grad, rw[r] * W[r, a] * D[r, a])
                for j in range(n):
                    if tag[r, a * n + j] == sid[r, a]:
                        grad[r, j] += s


@rows("c")
def alt_cost_diff(r, c, stride, off, span, D):
    """D[r, a] += c[path a's alternative row] - c[r] on the drawn rows: a cost's share of f(y) - f(x)."""
    if slot_local(r, stride, span) == 0:
        if D.shape[1] == 1:
            D[r, 0] += c[r + off * stride] - c[r]
        else:
            for a in range(D.shape[1]):
                D[r, a] += c[r + (off + a) * stride] - c[r]


@rows("switched")
def alt_reset(r, x, switched, stride, off, span):
    """Each path's alternative row takes the drawn row's values of x where the node just drawn
    kept a jump on it (a value computed before it and read after it)."""
    if slot_local(r, stride, span) == 0:
        for a in range(switched.shape[1]):   # stores on every row: selects, not branches on the draw
            s, ra = switched[r, a] > 0.0, r + (off + a) * stride
            for j in range(x.shape[1]):
                x[ra, j] = x[r, j] if s else x[ra, j]


@rows("switched")
def alt_reset_steps(r, x, steps, switched, stride, off, span):
    """alt_reset for the first `steps` steps of a loop's per-step storage x (the steps' rows one
    after the other, R = switched.shape[0] each): a loop's outputs, read after the loop."""
    if slot_local(r, stride, span) == 0:
        R = switched.shape[0]
        for a in range(switched.shape[1]):
            if switched[r, a] > 0.0:
                ra = r + (off + a) * stride
                for s in range(steps):
                    for j in range(x.shape[1]):
                        x[s * R + ra, j] = x[s * R + r, j]


def _state(g, n, d):
    """The digit (stride 1, the A = 2 paths' alternatives at local indices 2 and 3 of 4) and the
    buffers a draw writes."""
    return (1, 2, 4, g.x(n, A) * 0, g.x(n, A) * 0, g.x(n, A) * 0, g.out(n, A), g.out(n, A * d), g.out(n, d), g.pos(n))


def _tangents(g, width, dirs=2):
    """A parameter's tangents along `dirs` directions (column d * width + j), S, the kept jumps',
    the learned importance (state: two cells of A paths, the second the node's; learn) and the
    scores' buffer (dirs 0: per unit, the empty tangents, no importance and no score, as the step
    passes them)."""
    if not dirs:
        return g.skip(2), g.skip(2), g.skip(1), -1, g.skip(2), g.skip(2)
    state = g.pos(12 * A)
    state[6 * A + 1] = 0.0   # path 1: weight 1, the candidate's sum measured
    return g.x(R, dirs * width), g.out(R, A * dirs), state, 6 * A, g.pos(R, 2 * A), g.out(R, dirs)


def _one(kind):
    """sd_<kind>_draw1's case: one unit, one path (local index 1 of 2), one direction or none."""
    n_params = len(_LAWS[kind][0].split(", "))
    def case(g):
        params = (np.floor(8 * g.u(R, 1)), g.u(R, 1)) if n_params == 2 else (g.u(R, 1),)
        uv = g.u(R, 2)
        tan = ((g.x(R, 1), g.out(R, 1), g.pos(6), 0, g.pos(R, 2), g.out(R, 1))
               if kind in ("bernoulli_probs", "binomial", "geometric_logits", "poisson")
               else (g.skip(2), g.skip(2), g.skip(1), -1, g.skip(2), g.skip(2)))
        return (*params, uv, uv, 1, 1, 2, g.x(R, 1) * 0, g.x(R, 1) * 0, g.x(R, 1) * 0, g.out(R, 1), g.out(R, 1),
                g.out(R, 1), g.pos(R), *tan)
    return case


R, D, A = 12, 3, 2
PARITY = {
    "sd_bernoulli_draw": lambda g: (g.x(R, D), g.u(R, D), g.u(R, A * D), *_state(g, R, D), *_tangents(g, D)),
    "sd_categorical_draw": lambda g: (g.x(R, 6), g.x(R, 6), g.u(R, A * 6), 3, *_state(g, R, 6), *_tangents(g, 6)),
    "sd_poisson_draw": lambda g: (3 * g.pos(R, D), g.u(R, D), g.u(R, A * D), *_state(g, R, D), *_tangents(g, D, 0)),
    "sd_bernoulli_probs_draw": lambda g: (g.u(R, D), *[g.u(R, (1 + A) * D)] * 2, *_state(g, R, D), *_tangents(g, D)),
    "sd_categorical_probs_draw": lambda g: (g.pos(R, 6), g.u(R, 6), g.u(R, A * 6), 3, *_state(g, R, 6),
                                            *_tangents(g, 6, 0)),
    "sd_binomial_draw": lambda g: (np.floor(8 * g.u(R, D)), g.u(R, D), g.u(R, D), g.u(R, A * D), *_state(g, R, D),
                                   *_tangents(g, D)),
    "sd_binomial_logits_draw": lambda g: (np.floor(8 * g.u(R, D)), g.x(R, D), g.u(R, D), g.u(R, A * D),
                                          *_state(g, R, D), *_tangents(g, D, 0)),
    "sd_geometric_draw": lambda g: (g.u(R, D), g.u(R, D), g.u(R, A * D), *_state(g, R, D), *_tangents(g, D)),
    "sd_geometric_logits_draw": lambda g: (g.x(R, D), g.u(R, D), g.u(R, A * D), *_state(g, R, D),
                                           *_tangents(g, D, 0)),
    **{f"sd_{kind}_draw1": _one(kind) for kind in _LAWS},
    "tangent_seed": lambda g: (g.out(R, D), 1),
    "alt_differs": lambda g: (np.floor(2 * g.u(R, D)), g.out(R, A), 1, 2, 4),
    "sd_bank": lambda g: (g.bits(R, A), 1, 4, g.bits(R, A) * g.pos(R, A), g.x(R, A), g.x(R, A * 2), g.x(R, 2),
                          learn_case(g, R, A), g.pos(24) * (np.arange(24) != 12)),
    "sd_tangent_grad": lambda g: (g.pos(R, A), g.x(R, A), g.x(R, A * 2), g.x(R, 2), g.pos(R), 1, 4, 1, 2, g.out(4)),
    "sd_grad": lambda g: (g.bits(R, A * D), 1, 4, g.pos(R, A), g.bits(R, A), g.x(R, A), g.pos(R), g.x(R, D)),
    "alt_cost_diff": lambda g: (g.x(R), 1, 2, 4, g.x(R, A)),
    "alt_reset": lambda g: (g.x(R, D), g.bits(R, A), 1, 2, 4),
    "alt_reset_steps": lambda g: (g.x(3 * R, D), 2, g.bits(R, A), 1, 2, 4),
}
